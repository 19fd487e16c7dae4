#!/usr/bin/env python3
"""Loopback HTTP servers for the shell tests, one per mode.

    serve.py PORTFILE static DIR              files under DIR (a download mirror)
    serve.py PORTFILE git ROOT TOKEN          git smart HTTP via `git http-backend`; every
                                              request must carry HTTP Basic auth with password
                                              TOKEN (any user name), like Gitea's job token
    serve.py PORTFILE imds INSTANCE_ID        the EC2 metadata service, IMDSv2 only

Binds 127.0.0.1 on a free port, writes the port to PORTFILE once listening, and serves until
killed. Each request is appended to PORTFILE.log as one line: METHOD PATH AUTH, where AUTH is
"auth" when an Authorization header was sent and "-" otherwise (the header itself is never
logged).
"""

import base64
import http.server
import os
import subprocess
import sys
import urllib.parse

IMDS_TOKEN = "imds-session-token"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the request log file is enough
        pass

    def record(self):
        auth = "auth" if self.headers.get("Authorization") else "-"
        with open(self.server.log_path, "a", encoding="utf-8") as log:
            log.write(f"{self.command} {self.path} {auth}\n")

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def do_GET(self):
        self.record()
        getattr(self, "serve_" + self.server.mode)()

    do_POST = do_GET
    do_PUT = do_GET

    def serve_static(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        full = os.path.realpath(os.path.join(self.server.root, path.lstrip("/")))
        if not full.startswith(self.server.root + os.sep) or not os.path.isfile(full):
            return self.reply(404, b"not found\n")
        with open(full, "rb") as f:
            self.reply(200, f.read(), [("Content-Type", "application/octet-stream")])

    def serve_imds(self):
        if self.command == "PUT" and self.path == "/latest/api/token":
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400)
            return self.reply(200, IMDS_TOKEN.encode())
        if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
            return self.reply(401)
        if self.command == "GET" and self.path == "/latest/meta-data/instance-id":
            return self.reply(200, self.server.instance_id.encode())
        return self.reply(404)

    def serve_git(self):
        auth = self.headers.get("Authorization", "")
        scheme, _, encoded = auth.partition(" ")
        try:
            _user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            password = None
        if scheme.lower() != "basic" or password != self.server.token:
            return self.reply(401, b"unauthorized\n", [("WWW-Authenticate", 'Basic realm="git"')])
        url = urllib.parse.urlsplit(self.path)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.server.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(url.path),
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "REMOTE_USER": "job",
            "REMOTE_ADDR": "127.0.0.1",
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        request = self.body()
        env["CONTENT_LENGTH"] = str(len(request))
        out = subprocess.run(["git", "http-backend"], input=request, env=env, capture_output=True, check=False).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.reply(status, payload, headers)


def main():
    port_file, mode, *args = sys.argv[1:]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.mode = mode
    server.log_path = port_file + ".log"
    if mode == "static":
        server.root = os.path.realpath(args[0])
    elif mode == "git":
        server.root, server.token = os.path.realpath(args[0]), args[1]
    elif mode == "imds":
        server.instance_id = args[0]
    else:
        sys.exit(f"serve.py: unknown mode {mode}")
    tmp = port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
