#!/usr/bin/env python3
"""QMP monitor integration test: drives qmp_test_server over real UNIX
sockets with the protocol, fd passing, limits and hostile clients, and
checks the server's descriptor count and memory afterwards.

usage: test_qmp.py <path to qmp_test_server>
"""
import array
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, flush=True)


class Client:
    def __init__(self, path, negotiate=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        self.greeting = self.read()
        if negotiate:
            r = self.cmd("qmp_capabilities")
            assert r == {"return": {}}, r

    def send(self, data, fds=()):
        if isinstance(data, str):
            data = data.encode()
        if fds:
            n = socket.send_fds(self.sock, [data], list(fds))
            data = data[n:]
        self.sock.sendall(data)

    def read(self):
        """Next line as JSON; lines must end with CRLF."""
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        assert b"\n" not in line, line
        return json.loads(line)

    def reply(self):
        """Next non-event message; events are kept."""
        while True:
            m = self.read()
            if "event" in m:
                self.events.append(m)
            else:
                return m

    def cmd(self, name, args=None, fds=(), **extra):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        req.update(extra)
        self.send(json.dumps(req) + "\n", fds)
        return self.reply()

    def close(self):
        self.sock.close()


def err(reply):
    e = reply.get("error", {})
    return (e.get("class"), e.get("desc"))


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def sanitized(pid):
    """ASan's quarantine and shadow memory make RSS meaningless."""
    with open(f"/proc/{pid}/maps") as f:
        return "asan" in f.read()


def check_memory(pid, what):
    hwm = vm_hwm_kib(pid)
    print(f"server VmHWM {what}: {hwm} KiB", flush=True)
    if not sanitized(pid):
        check(hwm < 120 * 1024, f"server memory bounded {what} ({hwm} KiB)")


def wait_for(pred, what, tries=500):
    for _ in range(tries):
        if pred():
            return True
        time.sleep(0.01)
    check(False, what)
    return False


def test_protocol(path):
    c = Client(path, negotiate=False)
    g = c.greeting["QMP"]
    check(g["version"]["qemu"] == {"major": 10, "minor": 0, "micro": 2},
          "greeting version")
    check(g["version"]["package"] == "mapram-test", "greeting package")
    check(g["capabilities"] == ["oob"], "greeting capabilities")
    r = c.cmd("query-version", id="x1")
    check(err(r) == ("CommandNotFound", "Expecting capabilities negotiation "
                     "with 'qmp_capabilities'"), "negotiation mode refuses")
    check(r.get("id") == "x1", "id echoed in negotiation mode")
    r = c.cmd("qmp_capabilities", id={"a": [1, None]})
    check(r == {"return": {}, "id": {"a": [1, None]}}, "negotiate with id")
    r = c.cmd("qmp_capabilities")
    check(err(r) == ("CommandNotFound", "Capabilities negotiation is already "
                     "complete, command ignored"), "second qmp_capabilities")
    r = c.cmd("query-version")
    check(r["return"]["qemu"]["major"] == 10, "query-version")
    r = c.cmd("nonexistent", id=5)
    check(err(r) == ("CommandNotFound",
                     "The command nonexistent has not been found")
          and r["id"] == 5, "unknown command")
    c.send('{"execute": "query-version", "bogus": 1, "id": 3}\n')
    r = c.reply()
    check(err(r)[1] == "QMP input member 'bogus' is unexpected" and
          r["id"] == 3, "unexpected member, id kept")
    r = c.cmd("test-types", {"req": 1, "u8": 300})
    check(err(r)[1] == "Parameter 'u8' expects uint8_t", "uint8 range")
    r = c.cmd("test-types", {"u8": 3})
    check(err(r)[1] == "Parameter 'req' is missing", "missing member")
    r = c.cmd("test-types", {"req": "1"})
    check(err(r)[1] == "Invalid parameter type for 'req', expected: integer",
          "type check")
    # Several requests in one write, one split over writes, single quotes.
    c.send('{"execute":"query-version","id":1}{"execute":"query-version",'
           '"id":2}\n{"execute":')
    time.sleep(0.05)
    c.send("'query-version', 'id': 3}\n")
    ids = [c.reply().get("id") for _ in range(3)]
    check(ids == [1, 2, 3], f"pipelined/split/single-quoted ids {ids}")
    c.send("{nonsense\n")
    c.send("}\n")
    r = c.reply()
    check(err(r)[1].startswith("JSON parse error, ") and "id" not in r,
          f"parse error {r}")
    r = c.cmd("human-monitor-command", {"command-line": "info test"})
    check(r.get("return") == "line one\r\nline two\r\n", "HMP CRLF")
    r = c.cmd("human-monitor-command", {"command-line": "frob 1"})
    check(r.get("return") == "unknown command: 'frob'\r\n", "HMP unknown")
    c.close()


def test_fds(path, pid):
    c = Client(path)
    base = fd_count(pid)
    tmp = tempfile.NamedTemporaryFile(prefix="mapram-qmp-")
    w = os.open(tmp.name, os.O_WRONLY | os.O_APPEND)
    r = c.cmd("test-fd-flags", fds=[w])
    flags = r["return"]["flags"]
    check(flags & os.O_ACCMODE == os.O_WRONLY and flags & os.O_APPEND,
          "received fd keeps its status flags")
    check(r["return"]["fd-flags"] & 1, "received fd is close-on-exec")
    r = c.cmd("add-fd", {"fdset-id": 1, "opaque": "main"}, fds=[w])
    check(r["return"]["fdset-id"] == 1, f"add-fd {r}")
    server_fd = r["return"]["fd"]
    check(os.readlink(f"/proc/{pid}/fd/{server_fd}") == tmp.name,
          "add-fd returns the server's own descriptor")
    r = c.cmd("add-fd", {}, fds=[w])
    check(r["return"]["fdset-id"] == 0, "add-fd lowest free id")
    second = r["return"]["fd"]
    r = c.cmd("add-fd")
    check(err(r)[1] == "No file descriptor supplied via SCM_RIGHTS",
          "add-fd without fd")
    r = c.cmd("add-fd", {"fdset-id": -1}, fds=[w])
    check(err(r)[1] == "Parameter 'fdset-id' expects a non-negative value",
          "add-fd negative id")
    r = c.cmd("query-fdsets")
    check(r["return"] == [
        {"fdset-id": 1, "fds": [{"fd": server_fd, "opaque": "main"}]},
        {"fdset-id": 0, "fds": [{"fd": second}]}], f"query-fdsets {r}")
    r = c.cmd("test-open", {"path": "/dev/fdset/1", "flags": os.O_RDONLY})
    check(err(r)[1] == "Failed to find file descriptor with matching "
          "flags=0x0", "fdset open mismatch")
    r = c.cmd("test-open", {"path": "/dev/fdset/1",
                            "flags": os.O_WRONLY | os.O_CREAT})
    check("return" in r, f"fdset open {r}")
    r = c.cmd("remove-fd", {"fdset-id": 1, "fd": server_fd + 1000})
    check(err(r)[1] == f"File descriptor named 'fdset-id:1, fd:"
          f"{server_fd + 1000}' not found", "remove-fd not found")
    r = c.cmd("remove-fd", {"fdset-id": 1, "fd": server_fd})
    check(r == {"return": {}}, "remove-fd one")
    check(not os.path.exists(f"/proc/{pid}/fd/{server_fd}"),
          "remove-fd closes immediately")
    r = c.cmd("remove-fd", {"fdset-id": 0})
    check(r == {"return": {}}, "remove-fd all")
    r = c.cmd("remove-fd", {"fdset-id": 0})
    check(err(r)[1] == "File descriptor named 'fdset-id:0' not found",
          "remove-fd set gone")
    check(c.cmd("query-fdsets") == {"return": []}, "no sets left")
    # Fds sent with commands that do not take them are closed.
    r = c.cmd("query-version", fds=[w, w, w])
    check("return" in r, "query-version with fds")
    # A flood of descriptors in one message is capped, then closed.
    c.send('{"execute": "query-version"}\n', fds=[w] * 200)
    check("return" in c.reply(), "fd flood answered")
    # Fds sent with a partial request, then the client vanishes.
    c2 = Client(path)
    c2.send('{"execute": "add-', fds=[w, w])
    c2.close()
    c.close()
    wait_for(lambda: fd_count(pid) == base - 1,
             f"fd count back to baseline (now {fd_count(pid)}, base {base})")
    os.close(w)


def test_big_inputs(path, pid):
    c = Client(path)
    chunk = b"a" * (1 << 20)
    for _ in range(100):  # a 100 MB line, no newline
        c.sock.sendall(chunk)
    c.send('\n{"execute": "query-version", "id": "after"}\n')
    r = c.reply()
    check(err(r)[1] == "JSON token size limit exceeded",
          f"100 MB line {r}")
    r = c.reply()
    check(r.get("id") == "after", "usable after the 100 MB line")
    c.send("[" * 200000 + "\n" + '{"execute": "query-version", "id": 2}\n')
    r = c.reply()
    check(err(r)[1] == "JSON nesting depth limit exceeded",
          f"deep nesting {r}")
    check(c.reply().get("id") == 2, "usable after deep nesting")
    c.send(b'{"execute": "\xff\xfe"}\n')
    check(err(c.reply())[1].startswith("JSON parse error"), "invalid UTF-8")
    c.close()
    check_memory(pid, "after big inputs")
    # Garbage: the server answers or drops, never dies.
    g = Client(path)
    g.send(os.urandom(1 << 20))
    g.close()
    c = Client(path)
    check("return" in c.cmd("query-version"), "alive after garbage")
    c.close()


def test_many_clients(path, path2):
    clients = [Client(path if i % 2 else path2) for i in range(50)]
    silent = Client(path, negotiate=False)
    for i, c in enumerate(clients):
        c.send(json.dumps({"execute": "query-version", "id": i}) + "\n")
    for i, c in enumerate(clients):
        check(c.reply().get("id") == i, f"client {i} answered")
    r = clients[0].cmd("test-event", {"name": "TEST_EVENT", "count": 2})
    check(r == {"return": {}}, "test-event")
    for i, c in enumerate(clients):
        got = []
        while len(got) < 2:
            m = c.events.pop(0) if c.events else c.read()
            check("event" in m, f"client {i}: event expected, got {m}")
            got.append(m)
        check([m["data"]["seq"] for m in got] == [0, 1] and
              all(m["event"] == "TEST_EVENT" and
                  set(m["timestamp"]) == {"seconds", "microseconds"}
                  for m in got), f"client {i} events {got}")
    # The unnegotiated client got nothing but its greeting.
    silent.sock.settimeout(0.2)
    try:
        data = silent.sock.recv(100)
        check(False, f"unnegotiated client received {data!r}")
    except socket.timeout:
        pass
    for c in clients:
        c.close()
    silent.close()


def test_half_close_and_abandon(path):
    c = Client(path)
    c.send('{"execute": "query-version", "id": "hc"}\n'
           '{"execute": "query-commands", "id": "hc2"}')
    c.sock.shutdown(socket.SHUT_WR)
    check(c.reply().get("id") == "hc", "reply after half-close")
    check(c.reply().get("id") == "hc2", "pending value completed at EOF")
    try:
        extra = c.read()
        check(False, f"unexpected {extra}")
    except EOFError:
        pass
    c.close()
    # Disconnect mid-command and mid-request.
    for payload in ('{"execute": "query-commands"}\n', '{"execute": "que'):
        d = Client(path)
        d.send(payload)
        d.close()


def test_pipelining(path):
    """A client that sends many requests before reading any reply is
    slowed down (the server pauses), not dropped, and loses nothing."""
    import threading
    c = Client(path)
    n = 20000
    reqs = "".join(json.dumps({"execute": "query-commands", "id": i}) + "\n"
                   for i in range(n)).encode()
    sender = threading.Thread(target=c.sock.sendall, args=(reqs,))
    sender.start()
    time.sleep(0.3)  # let the backlog build; correctness does not depend on it
    ids = [c.reply().get("id") for _ in range(n)]
    sender.join()
    check(ids == list(range(n)), "all pipelined replies, in order")
    c.close()


def test_slow_reader(path, pid):
    reader = Client(path)  # negotiated, never reads
    c = Client(path)
    c.send('{"execute": "test-event", "arguments": {"name": "FLOOD", '
           '"count": 250000}}\n')
    # 250000 events are ~25 MB, more than the output cap: both clients are
    # dropped instead of the server growing.
    for name, cl in (("reader", reader), ("emitter", c)):
        # a hang guard, not a timing bound: under ASan on a loaded machine
        # the flood takes far longer than the clients' usual 20 s
        cl.sock.settimeout(180)
        total, eof = 0, False
        try:
            while True:
                data = cl.sock.recv(1 << 20)
                if not data:
                    eof = True
                    break
                total += len(data)
        except ConnectionResetError:
            eof = True
        except socket.timeout:
            pass
        check(eof and total < 20 << 20,
              f"{name} dropped past the output cap (eof {eof}, {total} bytes)")
    check_memory(pid, "after the event flood")
    reader.close()
    c.close()
    d = Client(path)
    check("return" in d.cmd("query-version"), "alive after flood")
    d.close()


def test_out_of_descriptors(server, tmpdir):
    """A server at its descriptor limit keeps serving the clients it has
    and accepts again once descriptors are free."""
    import resource
    path = os.path.join(tmpdir, "lim.sock")

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))

    proc = subprocess.Popen([server, path], stdout=subprocess.PIPE,
                            preexec_fn=limit)
    try:
        check(proc.stdout.readline() == b"ready\n", "limited server ready")
        first = Client(path)
        extra = []
        for _ in range(30):  # more than the limit allows
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(path)
            except OSError:
                s.close()
                break
            extra.append(s)
        check("return" in first.cmd("query-version"),
              "served while out of descriptors")
        for s in extra:
            s.close()
        first.close()
        again = [None]

        def reconnect():
            try:
                again[0] = Client(path)
                return True
            except (OSError, EOFError):
                return False
        if wait_for(reconnect, "accepting again after descriptors freed"):
            check("return" in again[0].cmd("query-version"), "new client")
            again[0].close()
        check(proc.poll() is None, "limited server alive")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if os.path.exists(path):
            os.unlink(path)


def main():
    server = sys.argv[1]
    tmpdir = tempfile.mkdtemp(prefix="mapram-qmp-")
    path = os.path.join(tmpdir, "qmp.sock")
    path2 = os.path.join(tmpdir, "qmp2.sock")
    # A stale socket file from a previous run must be replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    proc = subprocess.Popen([server, path, path2], stdout=subprocess.PIPE)
    try:
        check(proc.stdout.readline() == b"ready\n", "server ready")
        for p in (path, path2):
            mode = stat.S_IMODE(os.stat(p).st_mode)
            check(mode == 0o600, f"socket mode {oct(mode)}")
        base = fd_count(proc.pid)
        test_protocol(path)
        test_fds(path, proc.pid)
        test_big_inputs(path, proc.pid)
        test_many_clients(path, path2)
        test_half_close_and_abandon(path)
        test_pipelining(path)
        test_slow_reader(path, proc.pid)
        test_out_of_descriptors(server, tmpdir)
        wait_for(lambda: fd_count(proc.pid) == base,
                 f"final fd count {fd_count(proc.pid)} != baseline {base}")
        check(proc.poll() is None, "server still running")
        Client(path).cmd("test-quit")
        check(proc.wait(timeout=20) == 0, "server exit status")
        check(not os.path.exists(path), "socket removed at exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in (path, path2):
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(tmpdir)
    if FAILS:
        print(f"{len(FAILS)} check(s) failed")
        return 1
    print("all QMP protocol checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
