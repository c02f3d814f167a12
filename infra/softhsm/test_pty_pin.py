"""Tests of pty_pin.py with stand-in tools (no SoftHSM needed): each stand-in prompts the way
softhsm2-util and pkcs11-tool do, switches echo off, reads a PIN from its terminal and reports
what it got."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
PTY_PIN = HERE / "pty_pin.py"

# A stand-in tool: for each (prompt, expected PIN) pair in $PTY_PIN_SCRIPT (JSON, so that no
# PIN is on a command line even here), prints the prompt, turns echo off (as getpass-style
# readers do), reads one line, and prints whether it was the expected PIN.
TOOL = textwrap.dedent(
    """
    import json, os, sys, termios
    fd = sys.stdin.fileno()
    ok = True
    for prompt, expect in json.loads(os.environ["PTY_PIN_SCRIPT"]):
        sys.stdout.write(prompt); sys.stdout.flush()
        if expect != "NOECHO-OFF":
            attrs = termios.tcgetattr(fd)
            attrs[3] &= ~termios.ECHO
            termios.tcsetattr(fd, termios.TCSAFLUSH, attrs)
        line = sys.stdin.readline().rstrip("\\n")
        if expect != "NOECHO-OFF":
            attrs[3] |= termios.ECHO
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        good = line == expect
        ok = ok and good
        print("\\nmatched" if good else "\\nmismatch")
    sys.exit(0 if ok else 3)
    """
)


def run(tmp_path, prompts, pin="1234-user", so_pin="9876-so", files=("pin", "so"), timeout=None):
    tool = tmp_path / "tool.py"
    tool.write_text(TOOL)
    args = [sys.executable, str(PTY_PIN)]
    if "pin" in files:
        (tmp_path / "pin").write_text(pin + "\n")
        args += ["--pin-file", str(tmp_path / "pin")]
    if "so" in files:
        (tmp_path / "so").write_text(so_pin + "\n")
        args += ["--so-pin-file", str(tmp_path / "so")]
    if timeout is not None:
        args += ["--timeout", str(timeout)]
    args += ["--", sys.executable, str(tool)]
    env = dict(os.environ, PTY_PIN_SCRIPT=json.dumps(prompts))
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)


def test_user_and_so_pins_go_to_their_prompts_and_never_show(tmp_path):
    r = run(
        tmp_path,
        [
            ("=== SO PIN ===\nPlease enter SO PIN: ", "9876-so"),
            ("Please reenter SO PIN: ", "9876-so"),
            ("Please enter user PIN: ", "1234-user"),
            ("Please enter User PIN: ", "1234-user"),
        ],
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("matched") == 4 and "mismatch" not in r.stdout
    assert "1234-user" not in r.stdout + r.stderr
    assert "9876-so" not in r.stdout + r.stderr


def test_the_tools_exit_status_and_output_come_back_on_failure(tmp_path):
    # The tool expects another PIN than the file holds: it fails with 3, output on stderr.
    r = run(tmp_path, [("Please enter User PIN: ", "something-else")])
    assert r.returncode == 3
    assert "mismatch" in r.stderr and r.stdout == ""
    assert "1234-user" not in r.stderr


def test_a_prompt_without_its_pin_file_is_refused(tmp_path):
    r = run(tmp_path, [("Please enter SO PIN: ", "9876-so")], files=("pin",))
    assert r.returncode == 2
    assert "--so-pin-file" in r.stderr


def test_a_tool_that_never_turns_echo_off_times_out_instead_of_hanging(tmp_path):
    # pty_pin.py types a PIN only once echo is off, so it never shows on the terminal; a tool
    # that reads with echo on is stopped by the timeout.
    r = run(tmp_path, [("Please enter User PIN: ", "NOECHO-OFF")], timeout=2)
    assert r.returncode == 124
    assert "timed out" in r.stderr

