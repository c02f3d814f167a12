#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal and types its PINs from files.

softhsm2-util and pkcs11-tool take a PIN either on their command line, where every user of the
machine can read it (ps, /proc/PID/cmdline), or from a terminal. This gives them a terminal: it
waits for a PIN prompt *and* for the program to switch echo off (the moment it starts reading
the PIN; pkcs11-tool flushes anything typed earlier), then writes the PIN. PINs never appear in
an argument list or in the output.

Usage: pty_pin.py [--so-pin-file FILE] [--pin-file FILE] [--timeout SECS] -- COMMAND [ARG...]
  A prompt that mentions "SO PIN" gets the SO PIN, any other "PIN" prompt the user PIN.
  Exit status: the command's; 124 on timeout; 2 on a usage error or a prompt with no PIN file.
  The command's terminal output (prompts included, PINs masked) goes to stdout when it
  succeeds, to stderr when it fails.
"""

import argparse
import os
import pty
import re
import select
import signal
import sys
import termios
import time

PROMPT = re.compile(rb"(SO PIN|PIN)[^\n]*:\s*$", re.IGNORECASE)


def read_pin(path):
    if path is None:
        return None
    with open(path, "rb") as f:
        pin = f.read().rstrip(b"\r\n")
    if not pin:
        sys.exit(f"pty_pin.py: {path} is empty")
    return pin


def echo_off(fd):
    try:
        return not termios.tcgetattr(fd)[3] & termios.ECHO
    except termios.error:
        return False


def drain(fd):
    """What the terminal still holds once the command has exited."""
    rest = bytearray()
    while select.select([fd], [], [], 0)[0]:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: nothing more
            break
        if not data:
            break
        rest += data
    return rest


def main():
    ap = argparse.ArgumentParser(add_help=True)
    ap.add_argument("--so-pin-file")
    ap.add_argument("--pin-file")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("no command given")
    so_pin, user_pin = read_pin(a.so_pin_file), read_pin(a.pin_file)

    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        except OSError as e:
            os.write(2, f"pty_pin.py: cannot run {cmd[0]}: {e}\n".encode())
            os._exit(127)

    transcript = bytearray()
    pending = bytearray()  # output since the last answered prompt
    deadline = time.monotonic() + a.timeout
    status = None
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            sys.stderr.write(f"pty_pin.py: {cmd[0]} timed out after {a.timeout:.0f} s\n")
            sys.exit(124)
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                data = b""
            if not data:
                break
            transcript += data
            pending += data
        m = PROMPT.search(bytes(pending))
        if m and echo_off(fd):
            is_so = m.group(1).upper().startswith(b"SO")
            pin = so_pin if is_so else user_pin
            if pin is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                which = "--so-pin-file" if is_so else "--pin-file"
                sys.stderr.write(f"pty_pin.py: {cmd[0]} asks for a PIN; give {which}\n")
                sys.exit(2)
            os.write(fd, pin + b"\n")
            pending.clear()
        if not ready:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                transcript += drain(fd)
                break
    if status is None:
        _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    text = bytes(transcript)
    for p in (so_pin, user_pin):
        if p:
            text = text.replace(p, b"****")
    (sys.stdout if code == 0 else sys.stderr).write(text.decode(errors="replace"))
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
