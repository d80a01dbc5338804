-- A token that fails verification: what rejecting costs.
wrk.headers["Authorization"] = "Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA"
