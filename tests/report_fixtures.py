"""Synthetic experiments in the real Parquet schema (written with nas_lth.store) for the report tests."""

from __future__ import annotations

import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas_lth.store import TRIAL_COLUMNS, locate, write_curve, write_trial

IPE = 20  # iterations per epoch
BUDGET = 12  # epochs
BUDGET_ITERS = IPE * BUDGET
STOPS = {"0": 0, "60": 60, "1ep": IPE, "early_bird": 80, "end": BUDGET_ITERS}


def _ml(prefix: str, f1: float) -> dict:
    """Multi-label metrics around a micro-F1 value."""
    return {f"{prefix}_micro_f1": f1, f"{prefix}_micro_precision": min(1.0, f1 + 0.03),
            f"{prefix}_micro_recall": max(0.0, f1 - 0.03), f"{prefix}_macro_f1": f1 - 0.1,
            f"{prefix}_macro_precision": f1 - 0.08, f"{prefix}_macro_recall": f1 - 0.12}


class Builder:
    """Writes trial rows (every TRIAL_COLUMNS key, like the search's callback) and curves; sets each trial
    file's modification time to a simulated finishing time."""

    def __init__(self, root: Path, name: str, multilabel: bool = False):
        self.dir = Path(root) / name
        self.loc = locate(str(self.dir))
        self.name, self.multilabel = name, multilabel
        self.n, self.clock = 0, 1_700_000_000.0
        self.rng = np.random.default_rng(0)

    @staticmethod
    def dense_acc(seed: int, split: str) -> float:
        return 0.975 + 0.002 * seed + (0.001 if split == "val" else 0.0)

    def trial(self, *, criterion="large_final", seed=0, rounds=3, stop_at="end", reinit="original",
              status="completed", acc: float | None = None, dense=True, curves=True, dense_curve=False,
              message="") -> str:
        self.n += 1
        tid = f"t{self.n:03d}"
        weights = 0.8 ** rounds * 0.98 + 0.02 * 0.9 ** rounds  # fc 20 %, output 10 % per round
        if acc is None:
            acc = self.dense_acc(seed, "test") + 0.01 * math.sin(rounds / 2) - 0.002 * rounds ** 1.2
            acc -= {"random": 0.022, "snip": 0.01}.get(criterion, 0.0) + (0.03 if reinit != "original" else 0.0)
            acc -= 0.004 * (stop_at in ("0", "1ep"))
        mask_iter = STOPS[stop_at]
        wall = 0.5 + 0.4 * rounds + float(self.rng.uniform(0, 0.3))
        row = {c: None for c in TRIAL_COLUMNS if c != "schema_version"}
        row.update(
            experiment=self.name, trial_id=tid, criterion=criterion, stop_at=stop_at, eb_eps=0.1, eb_window=5,
            rewind_to=0, reinit=reinit, prune_rate_fc=0.2, prune_rate_conv=0.15, prune_rate_output=0.1,
            prune_rate_embedding=0.2, target_weights=None, rounds=rounds, scope="layerwise", budget=float(BUDGET),
            seed=seed, model="lenet300_100", dataset="reuters_apte90" if self.multilabel else "digits",
            node="vm", device="cpu", status=status, message=message, wall_seconds=wall,
        )
        if status != "failed":
            row.update(weights_remaining=weights, iterations_trained=BUDGET_ITERS * rounds + mask_iter,
                       shared_iterations=float(mask_iter), epochs_trained=float(BUDGET), mask_iter=float(mask_iter),
                       mask_digest=f"{self.n:016x}", trajectory_key="abc")
        if status == "completed":
            # winning tickets stop earlier than random/reinit ones, and earliest at moderate sparsity
            slow = 0.25 * (criterion == "random" or reinit != "original") + 0.1 * (criterion == "snip")
            es = float(int(BUDGET_ITERS * (0.4 + slow + 0.1 * abs(rounds - 3) / 4)) // 10 * 10)
            row.update(val_acc=acc + 0.002, test_acc=acc, val_loss=0.1, test_loss=0.11, early_stop_iter=es,
                       val_acc_at_early_stop=acc + 0.003, test_acc_at_early_stop=acc + 0.001)
        elif status == "stopped":
            row.update(val_acc=acc - 0.2, epochs_trained=3.0, iterations_trained=3 * IPE)
        elif status == "diverged":
            row.update(val_acc=float("nan"), val_loss=float("nan"), message=message or "loss became nan")
        if dense and status != "failed":
            row.update(dense_val_acc=self.dense_acc(seed, "val"), dense_test_acc=self.dense_acc(seed, "test"))
        if self.multilabel and status in ("completed", "stopped"):
            f1 = row["val_acc"] - 0.1
            row.update(_ml("val", f1))
            if status == "completed":
                row.update(_ml("test", f1 - 0.002))
            row["objective"] = f1
            if dense:
                row["dense_objective"] = self.dense_acc(seed, "val") - 0.1
        elif row["val_acc"] is not None:
            row["objective"] = row["val_acc"]
            if dense:
                row["dense_objective"] = row["dense_val_acc"]
        write_trial(self.loc, tid, row)
        self.clock += wall
        path = self.dir / "trials" / f"{tid}.parquet"
        os.utime(path, (self.clock, self.clock))
        if curves and status != "failed":
            tau = 25 + 4 * rounds + 3 * seed + 15 * (criterion == "random" or reinit != "original")
            write_curve(self.loc, tid, self.curve(tid, rounds, reinit, acc, status, dense_curve, seed, tau))
        return tid

    def curve(self, tid, rounds, reinit, acc, status, dense_curve, seed, tau) -> list[dict]:
        recs = []
        last_it = BUDGET_ITERS if status == "completed" else 3 * IPE

        def point(rnd, run, it, final_acc, tau=tau):
            a = final_acc * (1 - 0.85 * math.exp(-it / tau))
            rec = {"round": rnd, "run": run, "iteration": it, "epoch": it / IPE,
                   "train_loss": None if it == 0 else 2.3 * math.exp(-it / tau) + 0.05,
                   "val_loss": 2.3 * math.exp(-it / tau) + 0.08 + 0.001 * max(0, it - 3 * tau), "val_acc": a}
            if self.multilabel:
                rec.update(_ml("val", a - 0.1))
            return rec

        if dense_curve:
            recs += [point(0, "dense", it, self.dense_acc(seed, "val"), 45) for it in range(0, BUDGET_ITERS + 1, 20)]
        for r in range(1, rounds + 1):
            run = reinit if r == rounds else "traj"
            end = last_it if r == rounds else BUDGET_ITERS
            recs += [point(r, run, it, acc) for it in range(0, end + 1, 20)]
        return [{"experiment": self.name, "trial_id": tid, **rec} for rec in recs]


def full_experiment(root: Path, name: str = "synth", *, multilabel: bool = False, curves: bool = True) -> Path:
    """Several criteria, seeds and weights levels, a random_reinit control, early tickets (several stop_at),
    dense references, stopped/diverged/failed rows, curves with a dense run."""
    b = Builder(root, name, multilabel)
    for seed in (0, 1, 2):
        for rounds in (1, 2, 4, 7):
            for crit in ("large_final", "snip", "random"):
                b.trial(criterion=crit, seed=seed, rounds=rounds, curves=curves,
                        dense_curve=curves and rounds == 1 and crit == "large_final")
            b.trial(criterion="large_final", seed=seed, rounds=rounds, reinit="random_reinit", curves=curves)
    for seed in (0, 1):
        for stop in ("0", "1ep", "60", "early_bird"):
            for crit in ("large_final", "snip"):
                b.trial(criterion=crit, seed=seed, rounds=4, stop_at=stop, curves=curves)
    b.trial(criterion="snip", rounds=2, status="stopped", curves=curves)
    b.trial(criterion="random", rounds=4, status="stopped", curves=curves)
    b.trial(criterion="large_final", rounds=7, status="diverged", curves=curves)
    b.trial(criterion="snip", rounds=3, status="failed", message="RuntimeError: CUDA out of memory")
    return b.dir


def only_failed_experiment(root: Path, name: str = "failed_only") -> Path:
    b = Builder(root, name)
    for crit in ("large_final", "snip", "synflow"):
        b.trial(criterion=crit, status="failed", message="ValueError: bad recipe", curves=False)
    return b.dir


def sparse_experiment(root: Path, name: str = "sparse") -> Path:
    """A single criterion and seed, no dense reference, no curves: what a first few trials look like."""
    b = Builder(root, name)
    for rounds in (1, 3, 5):
        b.trial(criterion="large_final", rounds=rounds, dense=False, curves=False)
    b.trial(criterion="large_final", rounds=2, status="stopped", dense=False, curves=False)
    return b.dir


# -- headless Chromium -------------------------------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
]
# what a page problem looks like in Chromium's stderr log (console messages are logged as INFO:CONSOLE)
CONSOLE_PATTERN = re.compile(r"CONSOLE|Uncaught|Failed to load resource|net::ERR_")


def find_chromium(install_timeout: float = 900.0) -> tuple[str | None, str]:
    """(path, "") of Debian's chromium, installing it with apt-get when running as root; (None, why) if absent."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path:
        return path, ""
    if os.geteuid() != 0:
        return None, "/usr/bin/chromium is absent and installing it needs root (apt-get install -y chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = ""
    install = ["apt-get", "install", "-y", "chromium"]
    for cmd in (install, ["apt-get", "update"], install):  # stale package lists: update, then try again
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=install_timeout, env=env)
            log = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
            log = log[0]
        except (OSError, subprocess.TimeoutExpired) as exc:
            log = str(exc)
        path = shutil.which("chromium")
        if path:
            return path, ""
    return None, f"chromium could not be installed with apt-get ({log})"


def dump_dom(chromium: str, url: str, timeout: float = 60.0) -> tuple[str, list[str]]:
    """Render ``url`` with --dump-dom; (DOM, stderr log lines that report a page problem)."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                              capture_output=True, text=True, timeout=timeout)
    return proc.stdout, [line for line in proc.stderr.splitlines() if CONSOLE_PATTERN.search(line)]


@dataclass
class PageCheck:
    problems: list[str]  # uncaught exceptions, console errors, error log entries, failed loads
    requests: list[str]  # every URL the page asked for
    images: list[list]  # [complete, naturalWidth, naturalHeight] per <img>
    title: str


def inspect_page(chromium: str, url: str, timeout: float = 60.0) -> PageCheck:
    """Open ``url`` in headless Chromium driven over the DevTools protocol (--remote-debugging-pipe, fds 3/4:
    no extra Python package) and collect what a developer console would show: uncaught exceptions, console
    errors, failed resource loads (those are not in Chromium's stderr log), every request, the images' state."""
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()

    def child_fds():
        os.dup2(to_chrome_r, 3)
        os.dup2(from_chrome_w, 4)
        os.set_inheritable(3, True)
        os.set_inheritable(4, True)

    with tempfile.TemporaryDirectory() as profile, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                 "about:blank"], preexec_fn=child_fds, close_fds=False, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        events: list[dict] = []
        buf = b""
        ids = iter(range(1, 10_000))
        deadline = time.monotonic() + timeout

        def send(method, params=None, session=None) -> int:
            msg_id = next(ids)
            msg = {"id": msg_id, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            os.write(to_chrome_w, json.dumps(msg).encode() + b"\0")
            return msg_id

        def wait(pred, until=None):
            nonlocal buf
            until = min(until or deadline, deadline)
            while True:
                while b"\0" in buf:
                    raw, buf = buf.split(b"\0", 1)
                    msg = json.loads(raw)
                    events.append(msg)
                    if pred(msg):
                        return msg
                left = until - time.monotonic()
                if left <= 0:
                    return None
                ready, _, _ = select.select([from_chrome_r], [], [], min(left, 0.2))
                if ready:
                    chunk = os.read(from_chrome_r, 1 << 20)
                    if not chunk:
                        err.seek(0)
                        raise RuntimeError("chromium exited: " + err.read().decode(errors="replace")[-2000:])
                    buf += chunk

        def call(method, params=None, session=None) -> dict:
            msg_id = send(method, params, session)
            reply = wait(lambda m: m.get("id") == msg_id)
            if reply is None:
                raise TimeoutError(f"chromium did not answer {method}")
            return reply.get("result", {})

        try:
            target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Log", "Runtime", "Network", "Page"):
                call(f"{domain}.enable", session=session)
            call("Page.navigate", {"url": url}, session)
            if wait(lambda m: m.get("method") == "Page.loadEventFired") is None:
                raise TimeoutError(f"{url} did not finish loading")
            wait(lambda m: False, until=time.monotonic() + 0.5)  # late console messages
            expr = "JSON.stringify({t: document.title, i: [...document.images].map(" \
                   "i => [i.complete, i.naturalWidth, i.naturalHeight])})"
            value = json.loads(call("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                                    session)["result"]["value"])
            try:
                send("Browser.close")
                proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the browser's own process group (start_new_session)
                proc.wait()
            os.close(to_chrome_w)
            os.close(from_chrome_r)

    problems, requests = [], []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            problems.append(f"{d.get('text')} {d.get('exception', {}).get('description', '')}".strip())
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            problems.append("console." + p["type"] + ": " + " ".join(str(a.get("value")) for a in p.get("args", [])))
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            problems.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
        elif method == "Network.loadingFailed":
            problems.append(f"load failed: {p.get('errorText')} ({p.get('type')})")
        elif method == "Network.requestWillBeSent":
            requests.append(p["request"]["url"])
    return PageCheck(problems, requests, value["i"], value["t"])
