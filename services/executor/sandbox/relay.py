"""
relay.py - holds the Python driver of one Daytona sandbox between the
executor's calls (the Daytona backend, services/executor/sbx_daytona.c).

`python3 -I relay.py serve DIR PRELOAD` (started once per sandbox, in the
background, through the toolbox's session API) starts `driver.py` from DIR
with its control pipes on fds 3 and 4 and its stdout and stderr on pipes of
its own, and listens on DIR/relay.sock. It keeps the driver's ready frame.

`python3 -I relay.py call DIR` (one per host call, through
/process/execute) reads one request from stdin: a line of JSON {"timeout_ms", "connect_ms",
"out_max", "kill_max", "frame_max"} then a line with the base64
of one whole request frame (empty: just the ready frame). It passes the
frame to the relay, which writes it to the driver and waits for the reply
frame while reading the driver's stdout and stderr, then prints one line:

    MARK-RELAY <status> <b64 reply frame> <b64 stdout> <b64 stderr>

status: "ok" (a reply), "timeout" (the wall clock ran out: the driver was
killed), "output" (too much output: killed), "exited" (the driver is gone),
"bad" (a malformed or oversize reply: killed), "busy". A client that goes
away before its reply (its execute timed out) also gets the driver killed.
Once the driver is dead the relay exits and every later call says
"exited". The host trusts nothing here: it decodes and caps it all itself.
"""

import base64
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time


def b64(b):
    return base64.b64encode(b).decode("ascii")


def read_frame(fd, deadline, pumps, limits, watch=None):
    """One frame from fd, pumping stdout/stderr meanwhile; "gone" when watch hangs up."""
    buf = b""
    want = 4
    header = True
    head = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout", b""
        fds = [fd] + [p[0] for p in pumps if p[0] is not None]
        if watch is not None:
            fds.append(watch)
        r, _, _ = select.select(fds, [], [], min(left, 1.0))
        if watch is not None and watch in r and not watch_alive(watch):
            return "gone", b""
        for p in pumps:
            if p[0] is not None and p[0] in r:
                chunk = os.read(p[0], 65536)
                if not chunk:
                    p[0] = None
                else:
                    p[2] += len(chunk)
                    if len(p[1]) < limits["out_max"]:
                        p[1] += chunk[: limits["out_max"] - len(p[1])]
        if sum(p[2] for p in pumps) > limits["kill_max"]:
            return "output", b""
        if fd in r:
            chunk = os.read(fd, want - len(buf))
            if not chunk:
                return "exited", b""
            buf += chunk
            if len(buf) == want:
                if not header:
                    return "ok", head + buf
                head = buf
                n = int.from_bytes(buf, "big")
                if n > limits["frame_max"]:
                    return "bad", b""
                header = False
                buf = b""
                want = n
                if n == 0:
                    return "ok", head


def watch_alive(sock_fd):
    s = socket.socket(fileno=os.dup(sock_fd))
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.close()


def control_fds(rd, wr):
    """In the driver's process: rd on fd 3, wr on fd 4, whatever numbers they had."""
    a, b = os.dup(rd), os.dup(wr)
    os.dup2(a, 3)
    os.dup2(b, 4)


def serve(d, preload):
    c2d_r, c2d_w = os.pipe()
    d2c_r, d2c_w = os.pipe()
    env = dict(os.environ)
    env["MARK_WORKSPACE"] = os.path.join(d, "..", "workspace")
    drv = subprocess.Popen(
        [sys.executable, "-I", os.path.join(d, "driver.py"), preload],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        pass_fds=(3, 4), cwd=env["MARK_WORKSPACE"], env=env,
        preexec_fn=lambda: control_fds(c2d_r, d2c_w),
        start_new_session=True)
    os.close(c2d_r)
    os.close(d2c_w)
    out = [drv.stdout.fileno(), b"", 0]
    err = [drv.stderr.fileno(), b"", 0]
    lim = {"out_max": 1 << 20, "kill_max": 64 << 20, "frame_max": 64 << 20}
    st, ready = read_frame(d2c_r, time.monotonic() + 600, [out, err], lim)
    ready_msg = (st, ready, out[1], err[1])
    path = os.path.join(d, "relay.sock")
    fresh = f"{path}.{os.getpid()}"
    try:
        os.unlink(fresh)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(fresh)
    srv.listen(4)
    # Only a socket that listens takes the name: a client never meets one that refuses.
    os.rename(fresh, path)
    dead = st != "ok"

    def kill():
        try:
            os.killpg(drv.pid, signal.SIGKILL)
        except OSError:
            pass
        drv.wait()

    while True:
        conn, _ = srv.accept()
        with conn:
            f = conn.makefile("rb")
            try:
                head = json.loads(f.readline() or b"{}")
                frame = base64.b64decode(f.readline().strip() or b"")
            except ValueError:
                conn.sendall(b"bad\n\n\n\n")
                continue
            if dead or drv.poll() is not None:
                conn.sendall(b"exited\n\n\n\n")
                kill()
                break
            if not frame:
                st, rep, o, e = ready_msg
                conn.sendall(("%s\n%s\n%s\n%s\n" % (st, b64(rep), b64(o), b64(e))).encode())
                continue
            lim = {"out_max": int(head.get("out_max", 1 << 20)),
                   "kill_max": int(head.get("kill_max", 64 << 20)),
                   "frame_max": int(head.get("frame_max", 64 << 20))}
            out[1], out[2], err[1], err[2] = b"", 0, b"", 0
            try:
                os.write(c2d_w, frame)
            except OSError:
                conn.sendall(b"exited\n\n\n\n")
                kill()
                break
            deadline = time.monotonic() + int(head.get("timeout_ms", 30000)) / 1000.0
            # The client's own end is watched too: it goes away when its execute times out.
            st, rep = read_frame(d2c_r, deadline, [out, err], lim, conn.fileno())
            if st != "ok":
                kill()
                dead = True
            try:
                conn.sendall(("%s\n%s\n%s\n%s\n" % (st, b64(rep), b64(out[1]), b64(err[1]))).encode())
            except OSError:
                kill()
                break
            if dead:
                break
    srv.close()  # the socket file stays: later calls find nobody listening and say "exited"


def call(d):
    head = sys.stdin.readline()
    frame = sys.stdin.readline()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + int(json.loads(head or "{}").get("connect_ms", 60000)) / 1000.0
    while True:
        try:
            s.connect(os.path.join(d, "relay.sock"))
            break
        except FileNotFoundError:  # the relay is still starting its driver
            if time.monotonic() > deadline:
                print("MARK-RELAY exited - - -")
                return
            time.sleep(0.05)
        except OSError:  # a socket nobody listens on: the relay is gone
            print("MARK-RELAY exited - - -")
            return
    s.sendall(head.encode() + frame.encode())
    f = s.makefile("rb")
    parts = [f.readline().strip().decode() or "-" for _ in range(4)]
    print("MARK-RELAY " + " ".join(p if p else "-" for p in parts))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
    else:
        call(sys.argv[2])
