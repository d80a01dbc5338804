"""
driver.py - the Python session inside one sandbox.

The executor starts this file once per sandbox (`python3 -I driver.py
<preload>`). It holds one chat's session: a single namespace that lives from
run to run, as a notebook kernel's does. It answers the host over two pipes,
requests on fd 3 and replies on fd 4, each frame a 4-byte big-endian length
followed by UTF-8 JSON. The requests (exec, put, get, list), the shape of a
run's result and the limits are the contract in services/executor/SANDBOX.md.
The host side is sbx_local.c.

What it does not do: capture stdout or stderr (fds 1 and 2 go straight to
the host, which reads and cuts them), enforce wall-clock time (the host kills
the sandbox) or trust the code it runs. User code gets a namespace of its own.
Its exceptions, and failures in its objects' repr, go into the result. A
malformed request gets an error reply; it never ends the session.

Only the standard library is used, besides the analysis libraries whose
objects it knows how to show (pandas, plotly, matplotlib). Each is touched
only once something has imported it.
"""

import ast
import base64
import binascii
import builtins
import datetime
import decimal
import errno
import importlib
import importlib.util
import io
import json
import linecache
import math
import os
import platform
import resource
import signal
import stat
import struct
import sys
import traceback
import types
import warnings

ROOT = os.path.realpath(os.environ.get("MARK_WORKSPACE") or "/workspace")
ROOT_PREFIX = ROOT if ROOT.endswith("/") else ROOT + "/"
FRAME_MAX = 256 << 20
GET_MAX = (FRAME_MAX - 4096) // 4 * 3  # largest file whose base64 fits in one frame
LIST_MAX = 1000
TRACEBACK_MAX = 20000
MESSAGE_MAX = 4096
CELL_TEXT_MAX = 1000  # one string value in a table snippet
NAME_MAX = 200
CELLS_KEPT = 500  # cells whose source stays in linecache for tracebacks
CELL = "<cell>"  # the current cell's name in tracebacks; earlier cells are "<cell N>"

# Used when an exec request leaves a limit out; the same as the executor's defaults.
DEFAULT_LIMITS = {
    "table_rows": 20, "table_cols": 50, "value_bytes": 16 << 10,
    "figure_bytes": 4 << 20, "image_bytes": 4 << 20, "artifact_bytes": 20 << 20,
    "artifacts_total": 50 << 20, "max_items": 10,
}

# errno of an OSError (anywhere in the exception chain) -> the limit it means. Inside a
# sandbox EAGAIN comes from fork and clone at RLIMIT_NPROC; no analysis does non-blocking I/O.
ERRNO_LIMITS = {
    errno.EFBIG: "file_size", errno.ENOSPC: "disk", errno.EDQUOT: "disk",
    errno.EMFILE: "open_files", errno.ENFILE: "open_files",
    errno.EAGAIN: "processes", errno.ENOMEM: "memory",
}

SELF_FILE = sys._getframe().f_code.co_filename  # frames from here are cut from tracebacks
PID = os.getpid()

_ctl_in = None  # fd 3, requests
_ctl_out = None  # fd 4, replies
_user = types.ModuleType("__main__")  # the session's namespace is _user.__dict__
_current = None  # the Run being executed, if any
_in_user = False  # user code is running: SIGXCPU and SIGINT raise into it
_cpu_hit = False
_cell_count = 0


class CPUTimeExceeded(BaseException):
    """The run used up its CPU seconds (SIGXCPU). A BaseException, so that
    `except Exception` in the user's code does not swallow it."""


class Refused(Exception):
    """A request the driver turns down; the message goes back in an error reply."""


def safe_str(obj):
    try:
        return str(obj)
    except BaseException:
        try:
            return repr(obj)
        except BaseException:
            return f"<unprintable {type(obj).__name__}>"


def failure(e):
    return f"{type(e).__name__}: {safe_str(e)}"


def b64(data):
    return base64.b64encode(data).decode("ascii")


def positive(v):
    """v when it is a number above 0, else 0."""
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else 0


def cut_bytes(text, limit):
    """text, cut to at most limit bytes of UTF-8 with a marker."""
    if len(text) <= limit:
        data = text.encode("utf-8", "replace")
        if len(data) <= limit:
            return text
    else:
        data = text[:limit].encode("utf-8", "replace")
    return data[:limit].decode("utf-8", "ignore") + f"… (cut at {limit} bytes)"


def jsonable(x, cap=None):
    """One value as JSON can carry it: NaN/NaT/NA -> None, inf -> "inf",
    numpy scalars -> Python, dates -> ISO strings, anything else -> str."""
    if x is None or isinstance(x, bool):
        return x
    if isinstance(x, str):
        return x if cap is None or len(x) <= cap else x[:cap] + "…"
    if isinstance(x, int):
        return x if -(1 << 63) <= x < (1 << 63) else str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return float(x)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(x, np.generic):
        if isinstance(x, (np.datetime64, np.timedelta64)):
            return None if np.isnat(x) else str(x)
        if isinstance(x, (np.bool_, np.number)):
            v = x.item()
            return jsonable(v, cap) if not isinstance(v, np.generic) else safe_str(x)
    pd = sys.modules.get("pandas")
    if pd is not None and (x is pd.NA or x is pd.NaT):
        return None
    if isinstance(x, (datetime.datetime, datetime.date, datetime.time)):
        return x.isoformat()
    if isinstance(x, decimal.Decimal):
        return None if x.is_nan() else str(x)
    if isinstance(x, (bytes, bytearray)):
        return jsonable(repr(bytes(x)), cap)
    return jsonable(safe_str(x), cap)


def scrub(x):
    """A whole reply made strict JSON (only needed when a NaN slipped in)."""
    if isinstance(x, dict):
        return {safe_str(k): scrub(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [scrub(v) for v in x]
    return jsonable(x)


# ---- frames on fds 3 and 4 ----

def quit_session(code):
    """The host is gone: leave at once, without waiting for the user's threads."""
    flush_stdio()
    os._exit(code)


def read_exact(n):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = _ctl_in.readinto(view[got:])
        if not k:
            quit_session(0)
        got += k
    return buf


def skip(n):
    while n > 0:
        k = len(_ctl_in.read(min(n, 1 << 20)) or b"")
        if not k:
            quit_session(0)
        n -= k


def recv():
    """The next request, a dict. EOF ends the process; a bad frame raises Refused."""
    (n,) = struct.unpack(">I", read_exact(4))
    if n > FRAME_MAX:
        skip(n)
        raise Refused(f"frame of {n} bytes is over the {FRAME_MAX}-byte limit")
    try:
        body = read_exact(n)
    except MemoryError:
        skip(n)  # nothing was read: the buffer could not be allocated
        raise Refused(f"no memory for a frame of {n} bytes")
    try:
        req = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise Refused(f"frame is not JSON: {e}")
    if not isinstance(req, dict):
        raise Refused("frame is not a JSON object")
    return req


def encode(msg):
    def dumps(obj):
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          default=lambda o: jsonable(o))
    try:
        text = dumps(msg)
    except (ValueError, RecursionError):
        try:
            text = dumps(scrub(msg))
        except (ValueError, RecursionError) as e:
            text = dumps({"t": "error", "id": msg.get("id"),
                          "message": f"cannot encode the reply: {e}"})
    return text.encode("utf-8", "replace")  # lone surrogates become '?'


def send(msg):
    try:
        body = encode(msg)
    except MemoryError:
        body = encode({"t": "error", "id": msg.get("id"), "message": "no memory for the reply"})
    if len(body) > FRAME_MAX:
        body = encode({"t": "error", "id": msg.get("id"),
                       "message": f"reply of {len(body)} bytes is over the {FRAME_MAX}-byte limit"})
    try:
        for part in (struct.pack(">I", len(body)), body):
            view = memoryview(part)
            while view:
                view = view[_ctl_out.write(view):]
    except OSError:
        quit_session(0)


def flush_stdio():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass


# ---- workspace files: put, get, list ----

def resolve(rel):
    """The real path of rel inside the workspace, or Refused."""
    if not isinstance(rel, str) or not rel:
        raise Refused("missing 'path'")
    if "\0" in rel:
        raise Refused("path contains a NUL byte")
    shown = rel if len(rel) <= NAME_MAX else rel[:NAME_MAX] + "…"
    if rel.startswith("/"):
        raise Refused(f"path '{shown}' is absolute")
    if ".." in rel.split("/"):
        raise Refused(f"path '{shown}' contains '..'")
    real = os.path.realpath(os.path.join(ROOT, rel))
    if real != ROOT and not real.startswith(ROOT_PREFIX):
        raise Refused(f"path '{shown}' leads outside the workspace")
    return real


def read_file(path, cap):
    """The bytes of the regular file at path (final symlink not followed), at most cap."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused("not a regular file")
        data = f.read(cap + 1)
    if len(data) > cap:
        raise Refused(f"larger than {cap} bytes")
    return data


def put_file(req):
    rel = req.get("path")
    real = resolve(rel)
    text = req.get("data_b64")
    if not isinstance(text, str):
        raise Refused("missing 'data_b64'")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("'data_b64' is not valid base64")
    try:
        os.makedirs(os.path.dirname(real), exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(real, flags, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        raise Refused(f"cannot write '{rel}': {e.strerror or e}")
    return {"t": "ok", "bytes": len(data)}


def get_file(req):
    rel = req.get("path")
    real = resolve(rel)
    try:
        data = read_file(real, GET_MAX)
    except FileNotFoundError:
        raise Refused(f"no such file '{rel}'")
    except (OSError, Refused) as e:
        raise Refused(f"cannot read '{rel}': {getattr(e, 'strerror', None) or e}")
    return {"t": "file", "bytes": len(data), "data_b64": b64(data)}


def list_files(req):
    """Regular files under the workspace, depth first in name order; symlinks are left out."""
    files, more, todo = [], False, [""]
    while todo and not more:
        rel_dir = todo.pop()
        try:
            with os.scandir(os.path.join(ROOT, rel_dir)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for e in entries:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            try:
                if e.is_dir(follow_symlinks=False):
                    subdirs.append(rel)
                    continue
                if not e.is_file(follow_symlinks=False):
                    continue
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if len(files) == LIST_MAX:
                more = True
                break
            files.append({"path": rel, "bytes": st.st_size,
                          "modified_ms": st.st_mtime_ns // 1000000})
        todo.extend(reversed(subdirs))
    return {"t": "files", "files": files, "truncated": more}


def scan_output():
    """{path: (size, mtime_ns)} of the regular files under output/."""
    found, base = {}, os.path.join(ROOT, "output")
    if os.path.islink(base):
        return found
    for dirpath, _dirs, names in os.walk(base):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found[os.path.relpath(path, ROOT)] = (st.st_size, st.st_mtime_ns)
    return found


# ---- what a run shows ----

class Run:
    """One execution: its cell, its limits, and what it shows as it goes."""

    def __init__(self, num, source, lim):
        self.filename = f"<cell {num}>"
        self.source, self.lim = source, lim
        self.tree = None  # set once the source parses
        self.value = None
        self.tables, self.figures, self.images, self.artifacts = [], [], [], []
        self.dropped = {}

    def room(self, kind):
        """The list to append one more `kind` to, or None when max_items is reached."""
        items = getattr(self, kind)
        if len(items) < self.lim["max_items"]:
            return items
        self.dropped[kind] = self.dropped.get(kind, 0) + 1
        return None

    def show(self, obj, name):
        """Add obj as a table, figure or image; False when it is none of those."""
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(obj, (pd.DataFrame, pd.Series)):
            out = self.room("tables")
            if out is not None:
                out.append(table(obj, name, self.lim))
            return True
        bd = sys.modules.get("plotly.basedatatypes")
        if bd is not None and isinstance(obj, bd.BaseFigure):
            self.add_figure(obj)
            return True
        mf = sys.modules.get("matplotlib.figure")
        if mf is not None and isinstance(obj, mf.Figure):
            self.add_png(obj)
            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None:
                plt.close(obj)  # shown now, not again at the end
            return True
        return False

    def add_figure(self, fig):
        out = self.room("figures")
        if out is None:
            return
        limit = self.lim["figure_bytes"]
        try:
            text = importlib.import_module("plotly.io").to_json(fig, validate=False)
            size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
            out.append(json.loads(text) if size <= limit
                       else {"skipped": f"figure larger than {limit} bytes"})
        except Exception as e:
            out.append({"skipped": f"figure could not be serialised: {failure(e)}"})

    def add_png(self, fig):
        out = self.room("images")
        if out is None:
            return
        limit = self.lim["image_bytes"]
        try:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
            data = buf.getvalue()
        except Exception as e:
            out.append({"format": "png", "skipped": f"figure could not be drawn: {failure(e)}"})
            return
        if len(data) > limit:
            out.append({"format": "png", "bytes": len(data),
                        "skipped": f"larger than {limit} bytes"})
        else:
            out.append({"format": "png", "bytes": len(data), "data_b64": b64(data)})

    def capture_pyplot(self):
        """Every open pyplot figure becomes an image; then all are closed."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        for num in plt.get_fignums():
            self.add_png(plt.figure(num))
        plt.close("all")

    def collect_artifacts(self, before, with_data=True):
        """New or changed files under output/. Without data, each is named with
        its size and the host fetches its bytes by other means (Daytona)."""
        lim, total = self.lim, 0
        after = scan_output()
        for path in sorted(p for p, sig in after.items() if before.get(p) != sig):
            out = self.room("artifacts")
            if out is None:
                continue
            item = {"path": path, "bytes": after[path][0]}
            if item["bytes"] > lim["artifact_bytes"]:
                item["skipped"] = f"larger than {lim['artifact_bytes']} bytes"
            elif total + item["bytes"] > lim["artifacts_total"]:
                item["skipped"] = f"over the {lim['artifacts_total']}-byte total of one run"
            elif not with_data:
                total += item["bytes"]
            else:
                try:
                    data = read_file(os.path.join(ROOT, path), lim["artifact_bytes"])
                    total += len(data)
                    item["bytes"], item["data_b64"] = len(data), b64(data)
                except (OSError, Refused) as e:
                    item["skipped"] = f"unreadable: {getattr(e, 'strerror', None) or e}"
            out.append(item)


def table(obj, name, lim):
    """A DataFrame or Series as a table snippet; a non-default index leads as column(s)."""
    try:
        pd = sys.modules["pandas"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = obj.to_frame() if isinstance(obj, pd.Series) else obj
            part = df.iloc[:lim["table_rows"], :lim["table_cols"]]
            columns, dtypes, values = [], [], []
            idx = df.index
            default = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1
            if not (default and idx.name is None):
                for i, level_name in enumerate(part.index.names):
                    if level_name is None:
                        level_name = "index" if part.index.nlevels == 1 else f"level_{i}"
                    level = part.index.get_level_values(i)
                    columns.append(safe_str(level_name))
                    dtypes.append(str(level.dtype))
                    values.append(level.tolist())
            for j, col in enumerate(part.columns):
                column = part.iloc[:, j]
                joined = "/".join(map(safe_str, col)) if isinstance(col, tuple) else None
                columns.append(joined or safe_str(col))
                dtypes.append(str(column.dtype))
                values.append(column.tolist())
            rows = [[jsonable(v, CELL_TEXT_MAX) for v in row] for row in zip(*values)]
        return {"name": name, "columns": columns, "dtypes": dtypes, "rows": rows,
                "total_rows": len(df), "total_columns": df.shape[1],
                "truncated": len(df) > lim["table_rows"] or df.shape[1] > lim["table_cols"]}
    except Exception as e:
        return {"name": name, "skipped": f"table could not be converted: {failure(e)}"}


def call_args(frame):
    """The source text of each argument of the call being made in frame, when
    that frame is the current cell's code (so display(df) is named "df")."""
    run = _current
    if run is None or run.tree is None or frame.f_code.co_filename != run.filename:
        return []
    try:
        pos = list(frame.f_code.co_positions())[frame.f_lasti // 2]
    except (IndexError, ValueError):
        return []
    for node in ast.walk(run.tree):
        if isinstance(node, ast.Call) and pos == (node.lineno, node.end_lineno,
                                                  node.col_offset, node.end_col_offset):
            return [None if isinstance(a, ast.Starred) else ast.get_source_segment(run.source, a)
                    for a in node.args]
    return []


def display(*objs, **_options):
    """Show objects in this run's result: DataFrames and Series as tables,
    Plotly and matplotlib figures as figures and images; anything else is
    printed as its repr."""
    run = _current
    names = call_args(sys._getframe(1)) if run is not None else []
    for i, obj in enumerate(objs):
        name = names[i] if i < len(names) else None
        if run is None or not run.show(obj, name[:NAME_MAX] if name else None):
            print(repr(obj))


# ---- plotly and matplotlib, patched whenever they are loaded ----

def plotly_show(fig, *_args, **_kwargs):
    """Figure.show() and plotly.io.show() inside Mark: the figure goes into the run's result."""
    if _current is not None:
        _current.add_figure(fig)


def pyplot_show(*_args, **_kwargs):
    """pyplot.show() inside Mark: the open figures become images now, as a notebook shows them."""
    if _current is not None:
        _current.capture_pyplot()


def figure_show(*_args, **_kwargs):
    """Figure.show() of matplotlib: a no-op, the figure is shown when the run ends."""


PATCHES = {
    "plotly.basedatatypes": lambda m: setattr(m.BaseFigure, "show", plotly_show),
    "plotly.io._renderers": lambda m: setattr(m, "show", plotly_show),
    "matplotlib": lambda m: m.use("Agg"),
    "matplotlib.figure": lambda m: setattr(m.Figure, "show", figure_show),
    "matplotlib.pyplot": lambda m: setattr(m, "show", pyplot_show),
}


def patch_loaded():
    for name, patch in PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            try:
                patch(module)
            except Exception:
                pass


class PatchFinder:
    """A meta path finder that loads nothing itself: it lets the other finders
    find the modules in PATCHES and patches each right after it executes, so
    the patches hold however late the user's code imports them."""

    def find_spec(self, name, path=None, target=None):
        patch = PATCHES.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is not None and hasattr(loader, "exec_module"):
            run_module = loader.exec_module

            def exec_module(module):
                run_module(module)
                try:
                    patch(module)
                except Exception:
                    pass
            loader.exec_module = exec_module  # this loader instance serves this module alone
        return spec


# ---- one execution ----

def on_sigxcpu(_signum, _frame):
    global _cpu_hit
    _cpu_hit = True
    if _in_user:
        raise CPUTimeExceeded("the run used up its CPU time")


def on_sigint(_signum, _frame):
    if _in_user:
        raise KeyboardInterrupt


def set_cpu_limit(cpu_s):
    """Soft RLIMIT_CPU to the CPU time used so far plus cpu_s; no cpu_s: back to the hard limit."""
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = hard
        if cpu_s:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            soft = math.ceil(ru.ru_utime + ru.ru_stime) + math.ceil(cpu_s)
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (OSError, ValueError):
        pass


def limit_of(exc):
    """The limit an exception (or one in its chain) means, or None."""
    seen, todo = set(), [exc] if exc is not None else []
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, CPUTimeExceeded):
            return "cpu_time"
        if isinstance(e, MemoryError):
            return "memory"
        if isinstance(e, OSError) and e.errno in ERRNO_LIMITS:
            return ERRNO_LIMITS[e.errno]
        if isinstance(e, RuntimeError) and "can't start new thread" in safe_str(e):
            return "processes"
        todo += [e.__cause__, e.__context__, *(getattr(e, "exceptions", None) or ())]
    return None


def describe_error(exc, cell_file):
    """{type, message, traceback} of an exception from the user's code: the
    driver's own frames are cut and the current cell is called <cell>."""
    if isinstance(exc, SyntaxError) and exc.filename == cell_file:
        exc.filename = CELL
    try:
        te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
        seen, todo = set(), [te]
        while todo:
            t = todo.pop()
            if t is None or id(t) in seen:
                continue
            seen.add(id(t))
            t.stack[:] = [f for f in t.stack if f.filename != SELF_FILE
                          and not f.filename.startswith("<frozen importlib")]
            for f in t.stack:
                f.line  # read the source line before the name changes
                if f.filename == cell_file:
                    f.filename = CELL
            if getattr(t, "filename", None) == cell_file:
                t.filename = CELL
            todo += [t.__cause__, t.__context__, *(getattr(t, "exceptions", None) or ())]
        text = "".join(te.format())
    except Exception:
        text = "".join(traceback.format_exception_only(type(exc), exc))
    if len(text) > TRACEBACK_MAX:
        head = TRACEBACK_MAX // 4
        tail = TRACEBACK_MAX - head
        text = f"{text[:head]}\n… ({len(text) - head - tail} characters cut) …\n{text[-tail:]}"
    message = safe_str(exc)
    if len(message) > MESSAGE_MAX:
        message = message[:MESSAGE_MAX] + "…"
    return {"type": type(exc).__name__, "message": message, "traceback": text}


def describe_value(value, lim):
    try:
        text = repr(value)
    except BaseException as e:
        text = f"<repr() failed: {failure(e)}>"
    return {"type": type(value).__name__, "text": cut_bytes(text, lim["value_bytes"])}


def hidden(source, node):
    """True when the last expression is followed by ';', a notebook's way to hide it."""
    lines = source.split("\n")
    rest = lines[node.end_lineno - 1].encode("utf-8", "replace")[node.end_col_offset:]
    return rest.decode("utf-8", "replace").lstrip().startswith(";")


def read_limits(raw):
    lim = dict(DEFAULT_LIMITS)
    if isinstance(raw, dict):
        for key in lim:
            lim[key] = int(positive(raw.get(key)) or lim[key])
    return lim


def run_code(req):
    global _current, _in_user, _cpu_hit, _cell_count
    code = req.get("code")
    if not isinstance(code, str):
        raise Refused("missing 'code'")
    cpu_s = positive(req.get("cpu_s"))
    _cell_count += 1
    run = Run(_cell_count, code, read_limits(req.get("limits")))
    linecache.cache.pop(f"<cell {_cell_count - CELLS_KEPT}>", None)
    linecache.cache[run.filename] = (len(code), None, code.splitlines(True), run.filename)
    try:
        os.makedirs(os.path.join(ROOT, "output"), exist_ok=True)
        os.chdir(ROOT)
    except OSError:
        pass
    before = scan_output()
    patch_loaded()

    exc = value = last = compiled = None
    try:
        run.tree = ast.parse(code, CELL)
        body = run.tree.body
        if body and isinstance(body[-1], ast.Expr):
            body, last = body[:-1], body[-1]
        compiled = (compile(ast.Module(body, []), run.filename, "exec", dont_inherit=True),
                    last and compile(ast.Expression(last.value), run.filename, "eval",
                                     dont_inherit=True))
    except Exception as e:  # SyntaxError; ValueError for NUL bytes; RecursionError for deep nesting
        exc = e.with_traceback(None)  # the parser's frames are not the user's
    _current, _cpu_hit = run, False
    set_cpu_limit(cpu_s)
    try:
        if compiled:
            try:
                _in_user = True
                exec(compiled[0], _user.__dict__)
                if compiled[1]:
                    value = eval(compiled[1], _user.__dict__)
            except BaseException as e:
                exc = e
            finally:
                _in_user = False
            if os.getpid() != PID:  # a fork of the user's code came back here: it must not answer
                os._exit(0)
        if exc is None and value is not None and not hidden(code, last):
            _user.__dict__["_"] = value
            name = ast.get_source_segment(code, last.value) or None
            if not run.show(value, name[:NAME_MAX] if name else None):
                run.value = describe_value(value, run.lim)
        value = None
        run.capture_pyplot()
        run.collect_artifacts(before, req.get("artifact_data") is not False)
    except BaseException as e:  # showing the results failed (say MemoryError): report it too
        exc = exc or e
    finally:
        _current = None
        set_cpu_limit(0)
    result = {"error": describe_error(exc, run.filename) if exc is not None else None,
              "value": run.value, "tables": run.tables, "figures": run.figures,
              "images": run.images, "artifacts": run.artifacts,
              "limit": limit_of(exc) or ("cpu_time" if _cpu_hit else None)}
    if run.dropped:
        result["dropped"] = run.dropped
    return {"t": "done", "result": result}


# ---- start-up and the request loop ----

HANDLERS = {"exec": run_code, "put": put_file, "get": get_file, "list": list_files}


def preload(names):
    errors = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        try:
            importlib.import_module(name)
        except BaseException as e:
            errors.append(f"{name}: {failure(e)}"[:MESSAGE_MAX])
    return errors


def have_parquet():
    try:
        return importlib.util.find_spec("pyarrow") is not None
    except (ImportError, ValueError):
        return False


def main():
    global _ctl_in, _ctl_out
    # First of all: the process limit the executor gave (sbx_spawn.c says why
    # it is set here), for good: a hard limit this namespace cannot raise.
    nproc = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 0
    if nproc > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    try:
        _ctl_in = os.fdopen(3, "rb", buffering=0)
        _ctl_out = os.fdopen(4, "wb", buffering=0)
        os.set_inheritable(3, False)  # not passed to processes the user's code starts
        os.set_inheritable(4, False)
    except OSError as e:
        sys.stderr.write(f"driver: fds 3 and 4 must be the control pipes (SANDBOX.md): {e}\n")
        sys.exit(2)
    if sys.stdout is not None:
        sys.stdout.reconfigure(line_buffering=True, errors="backslashreplace")
    signal.signal(signal.SIGXCPU, on_sigxcpu)
    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # too big a write fails with EFBIG instead
    os.environ["MPLBACKEND"] = "Agg"
    sys.dont_write_bytecode = True  # -I ignores PYTHONDONTWRITEBYTECODE
    sys.meta_path.insert(0, PatchFinder())
    _user.__dict__["__builtins__"] = builtins
    builtins.display = display
    sys.modules["__main__"] = _user  # pickle finds the user's classes in __main__
    preload_names = sys.argv[1] if len(sys.argv) > 1 else ""
    sys.argv = [""]  # the user's code sees no arguments
    errors = preload(preload_names)
    patch_loaded()
    flush_stdio()
    send({"t": "ready", "python": platform.python_version(), "parquet": have_parquet(),
          "preload_errors": errors})
    while True:
        rid = None
        try:
            req = recv()
            rid = req.get("id")
            if not isinstance(rid, int) or isinstance(rid, bool):
                rid = None
            kind = req.get("t")
            handler = HANDLERS.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise Refused(f"unknown request '{safe_str(kind)[:NAME_MAX]}'")
            reply = handler(req)
        except Refused as e:
            reply = {"t": "error", "message": str(e)}
        except BaseException as e:  # the driver failed (say MemoryError); the session goes on
            reply = {"t": "error", "message": f"driver failed: {failure(e)}"}
        if os.getpid() != PID:
            os._exit(0)
        flush_stdio()
        send({"t": reply.pop("t"), "id": rid, **reply})


if __name__ == "__main__":
    main()
