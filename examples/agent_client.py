#!/usr/bin/env python3
"""Gets an access token from a running `pkjwt agent` over its Unix socket (standard library only).

    python3 examples/agent_client.py --socket /run/pkjwt-agent/agent.sock --profile billing

prints the access token alone on stdout; with --json, the agent's whole answer. On an error the
agent's error code and description go to stderr and the exit status is 1. Use `token()` from your
own code: it returns the token JSON as a dict.
"""

import argparse
import http.client
import json
import socket
import sys
import urllib.parse


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX socket: the host name is only sent in the Host header."""

    def __init__(self, path, timeout=10.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class AgentError(Exception):
    """The agent answered with an error (its `error` code and `error_description`)."""


def token(socket_path, profile, timeout=10.0):
    """The agent's token answer for `profile`: access_token, token_type, expires_in, scope."""
    conn = UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request("GET", "/token?" + urllib.parse.urlencode({"profile": profile}))
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    if resp.status != 200:
        raise AgentError(f"HTTP {resp.status}: {body.get('error')}: {body.get('error_description')}")
    return body


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", required=True, help="the agent's Unix socket")
    p.add_argument("--profile", required=True, help="a [profile.NAME] of the agent's config")
    p.add_argument("--json", action="store_true", help="print the whole answer")
    a = p.parse_args()
    try:
        t = token(a.socket, a.profile)
    except (AgentError, OSError) as e:
        print(f"agent_client: {e}", file=sys.stderr)
        return 1
    print(json.dumps(t) if a.json else t["access_token"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
