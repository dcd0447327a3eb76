"""What a review and a hostile new-user trial found (issue 6): names that become paths,
lost writes, conflicting options, a refresh that must survive its process, odd input, and
messages that say the right thing. Each test fails without its fix."""
import json
import os
import pty
import select
import signal
import subprocess
import tempfile
import time

from harness import closed_port, KIMICTL, Home, Server, certs, check, run, test, wait_for
from test_auth import call, creds_path, kimi_env, read_like_kimi_cli, write_kimi_cli_file


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)


def user_lua(env, text):
    write(os.path.join(env["KIMICTL_LUA_DIR"], "user.lua"), text)




# --- A. names that become paths -------------------------------------------------------

@test
def a_profile_name_is_never_a_path():
    with Home() as home, Server("fake_kimi.py", "--interval", "0.05", "--device-script", "ok") as srv:
        env = kimi_env(home, srv)
        victim = os.path.join(home.path, "victim.json")
        write(victim, "precious\n")
        # from ~/.config/kimictl/credentials/ this would reach ~/victim.json
        for bad in ("../../../victim", "a/b", "", "x" * 65, "..", "with space"):
            for args in (["login", "--no-browser", "--profile", bad], ["logout", "-P", bad],
                         ["chat", "-p", "hi", "-P", bad], ["auth", "token", "--profile=" + bad]):
                r = run(args, env)
                check(r.returncode == 2 and "bad profile name" in r.stderr, (args, r.returncode, r.stderr))
        check(open(victim).read() == "precious\n", "the file outside the store changed")
        check(call(srv, "/_stats")["device_auth"] == 0, "a login started with a bad name")
        r = run(["login", "--provider", "../../x"], env)
        check(r.returncode == 2 and "bad provider name" in r.stderr, r.stderr)
        cred_dir = os.path.join(home.path, ".config", "kimictl", "credentials")
        check(not os.path.exists(cred_dir) or os.listdir(cred_dir) == [], "files were created")


@test
def a_hand_edited_profiles_file_with_a_bad_name_is_refused():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        prof = os.path.join(home.path, ".config", "kimictl", "profiles.json")
        text = json.dumps({"providers": {"kimi": {"../../victim": {"region": "global"}}}})
        write(prof, text)
        r = run(["auth", "status"], env)
        check(r.returncode == 1 and "profiles.json is damaged" in r.stderr and "bad profile name" in r.stderr, r.stderr)
        check(open(prof).read() == text, "the damaged file was changed")


# --- B. output that cannot be written ---------------------------------------------------

def run_to(args, env, path):
    with open(path, "w") as out:
        return subprocess.run([KIMICTL, *args], env=env, stdout=out, stderr=subprocess.PIPE, text=True, timeout=60)


@test
def output_to_a_full_disk_is_an_error():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        for args in (["auth", "token"], ["chat", "-p", "hi"], ["doctor", "--json"], ["--version"], ["auth", "status"]):
            r = run_to(args, env, "/dev/full")
            check(r.returncode == 1 and "cannot write" in r.stderr and "No space left" in r.stderr,
                  (args, r.returncode, r.stderr))


@test
def a_closed_pipe_is_a_quiet_exit():
    with Home() as home:
        p = subprocess.Popen([KIMICTL, "help", "login"], env=home.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()   # nobody reads: the first write meets a closed pipe
        err = p.stderr.read()
        p.wait(timeout=30)
        check(p.returncode != 0 and err == b"", (p.returncode, err))


# --- C. two ways to give a key, and a key over an OAuth login ---------------------------

@test
def api_key_stdin_and_key_cmd_together_are_refused():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        r = run(["login", "--api-key-stdin", "--key-cmd", "echo k"], env, input="sk-x\n")
        check(r.returncode == 2 and "choose one" in r.stderr, r.stderr)
        check(not os.path.exists(os.path.join(home.path, ".config", "kimictl", "profiles.json")), "something was saved")


@test
def a_key_over_an_oauth_login_says_so_and_can_be_undone():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        tok = call(srv, "/_seed")
        write_kimi_cli_file(home, tok, time.time() + 900)
        r = run(["login", "--key-cmd", "echo not-a-real-key"], env)
        check(r.returncode == 0 and "instead of your kimi login" in r.stderr and "--key-only" in r.stderr, r.stderr)
        check(run(["chat", "-p", "hi"], env).returncode == 1, "the saved key was not used")
        r = run(["logout", "--key-only"], env)
        check(r.returncode == 0 and "key saved for kimi/default" in r.stderr, r.stderr)
        check(os.path.exists(creds_path(home)), "--key-only removed the OAuth login")
        r = run(["chat", "-p", "hi"], env)
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", r.stderr)


@test
def an_oauth_login_replaces_a_saved_key():
    with Home() as home, Server("fake_kimi.py", "--interval", "0.05", "--device-script", "ok") as srv:
        env = kimi_env(home, srv)
        check(run(["login", "--key-cmd", "echo bad-key"], env).returncode == 0, "key not saved")
        r = run(["login", "--no-browser"], env)
        check(r.returncode == 0, r.stderr)
        r = run(["chat", "-p", "hi"], env)
        check(r.returncode == 0 and r.stdout == "Hello from Kimi\n", "the old key still shadows the login: " + r.stderr)


# --- D. a refresh survives the death of the process that started it ---------------------

def refresh_then_kill(sig, group):
    with Home() as home, Server("fake_kimi.py", "--refresh-delay", "2") as srv:
        tok = call(srv, "/_seed")
        path = write_kimi_cli_file(home, tok, time.time() - 60)
        env = kimi_env(home, srv)
        p = subprocess.Popen([KIMICTL, "auth", "token"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        # the refresh request has reached the server, which rotates the token as it answers
        wait_for(lambda: call(srv, "/_stats")["refresh_calls"] == 1, 30, "the refresh request")
        if group:
            os.killpg(p.pid, sig)
        else:
            p.send_signal(sig)
        p.communicate(timeout=30)
        check(p.returncode != 0, "the process was not stopped")
        wait_for(lambda: read_like_kimi_cli(path)["refresh_token"] != tok["refresh_token"], 30,
                 "the detached refresh to save the rotated token")
        r = run(["auth", "token"], env)
        doc = read_like_kimi_cli(path)
        check(r.returncode == 0 and r.stdout.strip() == doc["access_token"], (r.stdout, r.stderr))
        stats = call(srv, "/_stats")
        check(stats["refresh_calls"] == 1 and stats["refresh_ok"] == 1, stats)


@test
def sigkill_mid_refresh_loses_nothing():
    refresh_then_kill(signal.SIGKILL, False)


@test
def ctrl_c_mid_refresh_loses_nothing():
    refresh_then_kill(signal.SIGINT, True)   # the terminal sends it to the whole group


@test
def auth_refresh_refreshes_now():
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        path = write_kimi_cli_file(home, tok, time.time() + 900)
        r = run(["auth", "refresh"], kimi_env(home, srv))
        check(r.returncode == 0 and "expires in" in r.stderr, r.stderr)
        check(read_like_kimi_cli(path)["access_token"] != tok["access_token"], "not refreshed")
        check(call(srv, "/_stats")["refresh_calls"] == 1, "refresh calls")


# --- E. odd input reaches the user as a message naming the file and field ---------------

@test
def odd_files_are_named_not_crashed_on():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        tok = call(srv, "/_seed")
        path = write_kimi_cli_file(home, tok, time.time() + 900)
        write(path, json.dumps(dict(tok, expires_at=1e300, expires_in=900.0)))
        for args in (["auth", "token"], ["auth", "status"]):
            r = run(args, env)
            check(r.returncode == 1 and "damaged" in r.stderr + r.stdout and "expires_at" in r.stderr + r.stdout,
                  (args, r.stdout, r.stderr))
            check("traceback" not in r.stderr and ".lua:" not in r.stderr, r.stderr)
        prof = os.path.join(home.path, ".config", "kimictl", "profiles.json")
        write(prof, '{"providers":{"kimi":"x"}}')
        r = run(["auth", "status"], env)
        check(r.returncode == 1 and "providers.kimi must be an object, got a string" in r.stderr, r.stderr)
        r = run(["chat", "-p", "hi"], env)
        check(r.returncode == 1 and "profiles.json is damaged" in r.stderr, r.stderr)


@test
def user_lua_mistakes_name_the_file_and_field():
    cases = [
        ('return { providers = { kimi = "str" } }', "providers.kimi must be a table, got a string"),
        ('return { providers = { kimi = { headers = "str" } } }', "providers.kimi.headers must be a table"),
        ('return { providers = { kimi = { timeouts = { idle_ms = "x" } } } }',
         "providers.kimi.timeouts.idle_ms must be a whole number >= 0, got a string"),
        ('return { providers = { kimi = { oauth = { retry_delays_ms = { -1 } } } } }',
         "providers.kimi.oauth.retry_delays_ms must be a list of whole numbers"),
        ("return 42", "user.lua: must return a table, got a number"),
        ('return { providers = 5 }', "providers must be a table"),
        ('error("boom")', "user.lua:1: boom"),
        ("return {", "user.lua does not load"),
    ]
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900)
        for text, want in cases:
            user_lua(env, text + "\n")
            r = run(["chat", "-p", "hi"], env)
            check(r.returncode == 1 and want in r.stderr and "user.lua" in r.stderr, (text, r.stderr))
            check("stack traceback" not in r.stderr and "provider.lua" not in r.stderr, (text, r.stderr))


@test
def doctor_without_a_model_skips_the_chat_check():
    with Home() as home, Server("fake_openai.py") as srv:
        env = home.env(OPENAI_BASE_URL=srv.url() + "/v1", OPENAI_API_KEY="test-key")
        r = run(["doctor", "--provider", "openai", "--json"], env)
        doc = json.loads(r.stdout)
        chat = [c for c in doc["checks"] if c["name"] == "chat"][0]
        check(r.returncode == 0 and chat["status"] == "skip" and "OPENAI_MODEL" in chat["fix"], r.stdout + r.stderr)
        posts = [q for q in srv.requests() if q["method"] == "POST"]
        check(posts == [], "sent a chat request without a model")


# --- F, G. error causes kept; prompts always valid JSON ----------------------------------

@test
def refused_oauth_host_keeps_its_cause():
    port = closed_port()
    with Home() as home, Server("fake_kimi.py") as srv:
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() - 60)
        env = kimi_env(home, srv, KIMI_CODE_OAUTH_HOST="http://127.0.0.1:%d" % port)
        r = run(["auth", "token"], env)
        check(r.returncode == 1 and "connection refused (is the server running?)" in r.stderr, r.stderr)
        check("[redacted]" not in r.stderr, r.stderr)


@test
def invalid_utf8_prompt_is_sent_as_valid_json():
    with Home() as home, Server("fake_openai.py") as srv:
        env = home.env(OPENAI_BASE_URL=srv.url() + "/v1", OPENAI_API_KEY="test-key")
        p = subprocess.run([KIMICTL, "chat", "--provider", "openai", "--model", "echo"], env=env,
                           input=b"caf\xe9 \xff\xfe ok \xe2\x82", capture_output=True, timeout=60)
        check(p.returncode == 0, p.stderr)
        req = [q for q in srv.requests() if q["method"] == "POST"][-1]
        check(req["utf8"], "the body sent was not valid UTF-8")
        body = req["body"]
        content = json.loads(body)["messages"][0]["content"]
        check(content == "caf\ufffd \ufffd\ufffd ok \ufffd", repr(content))


# --- H. a login that could not be saved is refused before it starts ---------------------

@test
def unwritable_home_fails_before_the_device_flow():
    with Home() as home, Server("fake_kimi.py", "--interval", "0.05", "--device-script", "ok") as srv:
        blocker = os.path.join(home.path, "file")
        write(blocker, "")
        env = kimi_env(home, srv, KIMI_SHARE_DIR=os.path.join(blocker, "kimi"))
        r = run(["login", "--no-browser"], env)
        check(r.returncode == 1 and "file/kimi/credentials" in r.stderr and "Not a directory" in r.stderr, r.stderr)
        check("lock" not in r.stderr, r.stderr)
        check(call(srv, "/_stats")["device_auth"] == 0, "the device flow started anyway")


# --- I. smaller things a user notices ----------------------------------------------------

@test
def an_error_after_a_partial_answer_starts_a_new_line():
    with Home() as home, Server("fake_openai.py") as srv:
        env = home.env(OPENAI_BASE_URL=srv.url() + "/v1", OPENAI_API_KEY="test-key")
        p = subprocess.run([KIMICTL, "chat", "-p", "hi", "--provider", "openai", "--model", "cut"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        check(p.returncode == 75 and "Hello from\nkimictl: " in p.stdout, repr(p.stdout))


@test
def status_json_is_stable():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        r = run(["auth", "status", "--json"], env)
        check(r.returncode == 0 and json.loads(r.stdout) == {"logins": []}, r.stdout)
        write_kimi_cli_file(home, call(srv, "/_seed"), time.time() + 900.75)
        r = run(["auth", "status", "--json"], env)
        check("\\/" not in r.stdout, "escaped slashes: " + r.stdout)
        login = json.loads(r.stdout)["logins"][0]
        check(isinstance(login["expires_at"], int) and login["where"].startswith("~/.kimi/credentials/"), login)


@test
def tls_failure_during_refresh_is_not_called_passing():
    c = certs(tempfile.mkdtemp(prefix="kimictl-certs-"))
    with Home() as home, Server("fake_kimi.py", tls=c["server"]) as srv:
        write_kimi_cli_file(home, call_tls(srv, c["ca"], "/_seed"), time.time() - 60)
        env = kimi_env(home, srv, KIMI_CODE_OAUTH_HOST=srv.url("https", "localhost"))
        r = run(["auth", "token"], env)
        check(r.returncode == 1 and "TLS certificate verification failed" in r.stderr, r.stderr)
        check("SSL_CERT_FILE" in r.stderr and "passing" not in r.stderr, r.stderr)


def call_tls(srv, ca, path):
    import ssl
    import urllib.request
    ctx = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(urllib.request.Request(srv.url("https", "localhost") + path, data=b""), context=ctx) as r:
        return json.loads(r.read())


@test
def a_refused_key_from_the_environment_says_to_unset_it():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv, KIMI_API_KEY="bad-key")
        r = run(["chat", "-p", "hi"], env)
        check(r.returncode == 1 and "$KIMI_API_KEY was refused" in r.stderr and "unset it" in r.stderr, r.stderr)
        check("kimictl login" not in r.stderr, r.stderr)


@test
def usage_without_a_quota_endpoint_says_so():
    with Home() as home, Server("fake_openai.py") as srv:
        env = home.env(OPENAI_BASE_URL=srv.url() + "/v1", OPENAI_API_KEY="test-key")
        r = run(["usage", "--provider", "openai"], env)
        check(r.returncode == 1 and "no quota endpoint" in r.stderr and "model" not in r.stderr, r.stderr)


@test
def logout_of_nothing_fails_the_same_way_for_every_profile():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        for args in (["logout"], ["logout", "--profile", "work"], ["logout", "--provider", "moonshot"]):
            r = run(args, env)
            check(r.returncode == 1 and "to remove" in r.stderr, (args, r.returncode, r.stderr))


@test
def stray_arguments_are_usage_errors():
    with Home() as home:
        for args in (["auth", "token", "--json"], ["--version", "extra"], ["doctor", "extra"], ["usage", "x"],
                     ["auth", "status", "--provider", "kimi"], ["chat", "-p", "a", "b"], ["help", "chat", "more"]):
            r = run(args, home.env())
            check(r.returncode == 2 and r.stderr.startswith("kimictl: "), (args, r.returncode, r.stderr))


@test
def login_refused_by_the_allow_list_explains_it():
    with Home() as home, Server("fake_kimi.py", "--interval", "0.05", "--device-script", "ok",
                                "--allowed-agents", "KimiCLI/") as srv:
        r = run(["login", "--no-browser"], kimi_env(home, srv))
        check(r.returncode == 1 and "Signed in" in r.stderr and "allow-list" in r.stderr, r.stderr)
        check(os.path.exists(creds_path(home)), "the login itself was not kept")


@test
def key_cmd_is_shown_by_its_program_only():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        check(run(["login", "--provider", "openai", "--key-cmd", "echo sk-hidden-123"], env).returncode == 0, "save")
        for args in (["auth", "status"], ["auth", "status", "--json"], ["doctor", "--provider", "openai"]):
            r = run(args, env)
            check("sk-hidden-123" not in r.stdout + r.stderr, (args, r.stdout))
        check("key_cmd: echo ..." in run(["auth", "status"], env).stdout, "program not shown")


@test
def api_key_typed_at_a_terminal_is_not_echoed():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(KIMICTL, [KIMICTL, "login", "--provider", "moonshot", "--api-key-stdin"], env)
        seen = b""

        def read_until(word, seconds=20):
            nonlocal seen
            deadline = time.time() + seconds
            while word not in seen and time.time() < deadline:
                if select.select([fd], [], [], 0.5)[0]:
                    try:
                        seen += os.read(fd, 1024)
                    except OSError:
                        break
        read_until(b"API key for moonshot")
        check(b"API key for moonshot" in seen, "no prompt: %r" % seen)
        os.write(fd, b"sk-typed-secret-42\n")
        read_until(b"Saved")
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        check(os.waitstatus_to_exitcode(status) == 0 and b"Saved" in seen, seen)
        check(b"sk-typed-secret-42" not in seen, "the key was echoed: %r" % seen)
        prof = json.load(open(os.path.join(home.path, ".config", "kimictl", "profiles.json")))
        check(prof["providers"]["moonshot"]["default"]["api_key"] == "sk-typed-secret-42", prof)


@test
def a_syntax_error_in_an_override_names_file_and_line():
    with Home() as home, Server("fake_openai.py") as srv:
        lua = os.path.join(home.path, "lua")
        write(os.path.join(lua, "providers", "openai.lua"), "return {\n  name = 'openai'\n  base_url = 'x'\n}\n")
        r = run(["chat", "-p", "hi", "--provider", "openai", "--model", "echo"],
                home.env(KIMICTL_LUA_DIR=lua, OPENAI_BASE_URL=srv.url() + "/v1", OPENAI_API_KEY="test-key"))
        check(r.returncode == 1 and "providers/openai.lua:3:" in r.stderr and "override" in r.stderr, r.stderr)
        check("stack traceback" not in r.stderr, r.stderr)


@test
def a_lock_path_that_is_not_a_directory_fails_fast():
    with Home() as home, Server("fake_kimi.py") as srv:
        tok = call(srv, "/_seed")
        d = os.path.join(home.path, ".kimi-code")
        write(os.path.join(d, "credentials", "kimi-code.json"), json.dumps(dict(tok, expires_at=int(time.time()) - 60)))
        os.makedirs(os.path.join(d, "oauth"))
        lock = os.path.join(d, "oauth", "kimi-code.lock")
        os.symlink(os.path.join(d, "nowhere"), lock)      # dangling: mkdir says EEXIST, stat says ENOENT
        t0 = time.time()
        r = run(["auth", "token"], kimi_env(home, srv), timeout=50)
        check(r.returncode == 1 and "kimi-code.lock" in r.stderr and "not a directory" in r.stderr, r.stderr)
        check(time.time() - t0 < 45, "it waited for the whole lock timeout")
        check(call(srv, "/_stats")["refresh_calls"] == 0, "refreshed without the lock")


@test
def state_that_cannot_be_saved_is_said_not_hidden():
    # A device id that cannot be saved, and a refused login that cannot be remembered:
    # the command still works or fails as it should, and says what it could not keep.
    with Home() as home, Server("fake_kimi.py") as srv:
        blocker = os.path.join(home.path, "file")
        write(blocker, "")
        tok = call(srv, "/_seed")
        r = run(["chat", "-p", "hi"], kimi_env(home, srv, KIMI_API_KEY=tok["access_token"],
                                              KIMI_SHARE_DIR=os.path.join(blocker, "kimi")))
        check(r.returncode == 0 and "could not save the device id" in r.stderr, r.stderr)
        env = kimi_env(home, srv)
        call(srv, "/_revoke", {"refresh_token": tok["refresh_token"]})
        write_kimi_cli_file(home, tok, time.time() - 60)
        r = run(["auth", "token"], dict(env, XDG_STATE_HOME=os.path.join(blocker, "state")))
        check(r.returncode == 1 and "expired or was revoked" in r.stderr, r.stderr)
        check("cannot remember the refused login" in r.stderr, r.stderr)


@test
def files_of_the_wrong_kind_and_no_home():
    with Home() as home, Server("fake_kimi.py") as srv:
        env = kimi_env(home, srv)
        os.makedirs(creds_path(home))                  # a directory where the login should be
        r = run(["auth", "token"], env)
        check(r.returncode == 1 and r.stderr.startswith("kimictl: cannot read ~/.kimi/credentials/kimi-code.json: Is a directory"),
              r.stderr)
        prof = os.path.join(home.path, ".config", "kimictl", "profiles.json")
        write(prof, "[]")
        r = run(["login", "--provider", "moonshot", "--api-key-stdin"], env, input="sk-1\n")
        check(r.returncode == 1 and "profiles.json is damaged (not a JSON object)" in r.stderr, r.stderr)
        check(open(prof).read() == "[]", "the damaged file was rewritten")
    r = subprocess.run([KIMICTL, "auth", "status"], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and r.stderr == "kimictl: HOME is not set: kimictl needs a home directory for its files\n", r.stderr)
