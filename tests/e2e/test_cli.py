"""The command line as a user meets it: help everywhere, the version, usage errors."""
import re

from harness import Home, check, run, test

COMMANDS = ["chat", "login", "logout", "auth", "doctor", "usage", "help", "version", "lua"]


@test
def every_command_has_help():
    with Home() as home:
        top = run(["--help"], home.env())
        check(top.returncode == 0, top.stderr)
        for c in COMMANDS:
            check(c in top.stdout, "%s missing from --help" % c)
            for args in ([c, "--help"], [c, "-h"], ["help", c]):
                r = run(args, home.env())
                check(r.returncode == 0 and "Usage: kimictl " + c in r.stdout, "%s: %s" % (args, r.stdout + r.stderr))


@test
def version_is_semver():
    with Home() as home:
        for args in (["--version"], ["version"]):
            r = run(args, home.env())
            check(r.returncode == 0 and re.fullmatch(r"kimictl \d+\.\d+\.\d+\n", r.stdout), repr(r.stdout))


@test
def usage_mistakes_exit_2_with_a_hint():
    with Home() as home:
        for args in (["frobnicate"], ["--frob"], ["chat", "--frob"], ["help", "frobnicate"],
                     ["auth"], ["auth", "frob"], ["chat", "--model"]):
            r = run(args, home.env(), input="")
            check(r.returncode == 2, "%s exited %d" % (args, r.returncode))
            check("Usage:" in r.stderr and "--help" in r.stderr, "%s: %s" % (args, r.stderr))
