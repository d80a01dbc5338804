-- Sign-ins of the bench user (argon2id on every request).
wrk.method = "POST"
wrk.body = '{"email":"bench@example.com","password":"bench-password"}'
wrk.headers["Content-Type"] = "application/json"
