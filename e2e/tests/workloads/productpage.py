"""A small productpage for mirror-e2e's --workload tests: log in, call details and reviews
through the sidecar (urllib honours HTTP_PROXY), name the reviews pod on the page.

With --drop-end-user it forgets to forward `end-user`: the classic app bug that makes
header-based routing "not work" in Istio.
"""
import http.cookies
import http.server
import json
import os
import sys
import urllib.parse
import urllib.request

PORT = int(sys.argv[1])
# A kwok pod listens on its own address (POD_IP); local mode on loopback.
ADDRESS = os.environ.get("POD_IP", "127.0.0.1")
DROP_END_USER = "--drop-end-user" in sys.argv
FORWARD = ["user-agent", "x-request-id", "traceparent", "tracestate", "cookie"]


class Page(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        print("%s %s" % (self.command, self.path), "user-agent=%s" % self.headers.get("user-agent"), flush=True)

    def user(self):
        jar = http.cookies.SimpleCookie(self.headers.get("cookie", ""))
        return jar["session"].value if "session" in jar else None

    def do_POST(self):
        if self.path != "/login":
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        user = urllib.parse.parse_qs(body).get("username", [""])[0]
        self.send_response(302)
        self.send_header("location", self.headers.get("referer", "None"))
        self.send_header("set-cookie", "session=%s; Path=/" % user)
        self.end_headers()

    def call(self, url):
        headers = {h: self.headers[h] for h in FORWARD if self.headers.get(h)}
        user = self.user()
        if user and not DROP_END_USER:
            headers["end-user"] = user
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=3) as r:
            return json.loads(r.read())

    def do_GET(self):
        if self.path != "/productpage":
            self.send_error(404)
            return
        self.call("http://details:9080/details/0")
        reviews = self.call("http://reviews:9080/reviews/0")
        page = "<div>Reviews served by: \n  %s\n</div>" % reviews["podname"]
        body = page.encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


print("productpage (%s) on %d, sidecar %s" % (os.environ.get("HOSTNAME"), PORT, os.environ.get("HTTP_PROXY")), flush=True)
# The suite sends up to 16 requests at once (--concurrency): a backlog of 5, Python's
# default, makes the sidecar's connects time out.
http.server.ThreadingHTTPServer.request_queue_size = 128
http.server.ThreadingHTTPServer((ADDRESS, PORT), Page).serve_forever()
