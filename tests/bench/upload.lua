-- Multipart upload of a CSV of MARK_UPLOAD_MB megabytes (default 4), with the
-- bearer token from MARK_TOKEN: the same body for Mark and for the bare sink.
local mb = tonumber(os.getenv("MARK_UPLOAD_MB") or "4")
local row = "2024-01-01,north,widget,12.50,3\n"
local rows = {}
for i = 1, math.floor(mb * 1024 * 1024 / #row) do rows[i] = row end
local csv = "day,region,product,price,qty\n" .. table.concat(rows)
local b = "mark-bench-boundary"
wrk.method = "POST"
wrk.body = "--" .. b .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"sales.csv\"\r\n" ..
	"Content-Type: text/csv\r\n\r\n" .. csv .. "\r\n--" .. b .. "--\r\n"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. b
wrk.headers["Authorization"] = "Bearer " .. os.getenv("MARK_TOKEN")
