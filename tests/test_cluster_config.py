"""cluster.yaml (the `ray up` configuration) checked offline.

* Ray's own validation: ``prepare_config`` (merge with Ray's AWS defaults) then ``validate_config`` (Ray's
  JSON schema and cross-checks), the two steps `ray up` runs before it talks to AWS; no network here.
  Broken copies must fail with a message that names the offending key; what Ray does not catch is
  recorded too, because the rest of this file has to cover it.
* Security: no ingress from outside the cluster except SSH, never to the dashboard (8265), the Ray client
  (10001) or the GCS (6379), both in the file and in the rules Ray's AWS provider would actually write;
  token authentication stays on; every node has an instance profile for S3.
* Software: torch in the range pyproject.toml allows (CPU build on the head, CUDA build from PyPI on the
  GPU workers), the same Ray version everywhere.
Not checked (needs AWS): the AMI id, the IAM profiles, instance quotas, image pulls, a real search.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import itertools
import re
import shlex
import socket
import sys
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from ray.autoscaler._private.providers import _get_default_config
from ray.autoscaler._private.util import prepare_config, validate_config

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
TEXT = CLUSTER_YAML.read_text()
CONFIG = yaml.safe_load(TEXT)
CLOSED_PORTS = (8265, 10001, 6379)  # dashboard, Ray client, GCS
WORLD = {"0.0.0.0/0", "::/0"}


@pytest.fixture
def offline(monkeypatch):
    """Any socket connection or name lookup, or an AWS SDK import, fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for name in ("boto3", "botocore"):
        monkeypatch.setitem(sys.modules, name, None)  # `import boto3` raises ImportError


def ray_validate(config: dict) -> dict:
    """What `ray up` does to the file before its first AWS call (commands._bootstrap_config)."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


# ---------------------------------------------------------------------------------------------- Ray's checks


def test_cluster_yaml_passes_rays_validation(offline):
    prepared = ray_validate(CONFIG)
    types = prepared["available_node_types"]
    assert prepared["head_node_type"] == "head_cpu"
    assert types["head_cpu"]["max_workers"] == 0  # filled in by prepare_config
    gpu_types = {name: t for name, t in types.items() if t["resources"].get("GPU", 0) > 0}
    assert {t["node_config"]["InstanceType"] for t in gpu_types.values()} == {"g5.xlarge", "g5.12xlarge"}
    assert all(t["min_workers"] == 0 for t in gpu_types.values()), "GPU workers should scale from zero"
    assert types["head_cpu"]["resources"] == {"CPU": 0}, "trials must not be scheduled on the head"


def test_nothing_is_inherited_from_rays_aws_defaults():
    """prepare_config fills every top-level key the file omits from Ray's aws/defaults.yaml (a shallow
    merge): e.g. a nightly-wheel `pip install ray` in setup_commands, m5.large spot node types, and
    `--dashboard-host=0.0.0.0`. The file sets all of them itself."""
    defaults = _get_default_config({"type": "aws"})
    missing = sorted(set(defaults) - set(CONFIG))
    assert not missing, f"cluster.yaml would silently take Ray's defaults for: {missing}"
    prepared = ray_validate(CONFIG)
    for kind in ("head", "worker"):
        assert prepared[f"{kind}_setup_commands"] == CONFIG["setup_commands"] + CONFIG[f"{kind}_setup_commands"]
        assert prepared[f"{kind}_start_ray_commands"] == CONFIG[f"{kind}_start_ray_commands"]


def _set(*path, value):
    def mutate(cfg):
        *parents, last = path
        for key in parents:
            cfg = cfg[key]
        cfg[last] = value
    return mutate


def _drop(*path):
    def mutate(cfg):
        *parents, last = path
        for key in parents:
            cfg = cfg[key]
        del cfg[last]
    return mutate


V = jsonschema.ValidationError
BROKEN = [
    # missing required keys
    pytest.param(_drop("available_node_types", "gpu_g5_xlarge", "resources"), V, "resources",
                 id="missing-node-type-resources"),
    pytest.param(_drop("available_node_types", "head_cpu", "node_config"), V, "node_config",
                 id="missing-node-type-node_config"),
    pytest.param(_drop("provider"), KeyError, "provider", id="missing-provider"),  # prepare_config: KeyError
    pytest.param(_drop("provider", "type"), KeyError, "type", id="missing-provider-type"),
    # wrong types
    pytest.param(_set("max_workers", value="ten"), V, "max_workers", id="wrong-type-max_workers"),
    pytest.param(_set("idle_timeout_minutes", value="10m"), V, "idle_timeout_minutes",
                 id="wrong-type-idle_timeout_minutes"),
    pytest.param(_set("available_node_types", "gpu_g5_xlarge", "resources", "GPU", value=0.5), V, "GPU",
                 id="wrong-type-fractional-node-gpu"),
    # unknown keys (a typo is not ignored where the schema is closed)
    pytest.param(_set("idle_timeout_minute", value=5), V, "idle_timeout_minute", id="unknown-top-level-key"),
    pytest.param(_set("available_node_types", "gpu_g5_xlarge", "max_worker", value=2), V, "max_worker",
                 id="unknown-node-type-key"),
    pytest.param(_set("provider", "security_group", "IpPermission", value=[]), V, "IpPermission",
                 id="unknown-security-group-key"),
    pytest.param(_set("docker", "worker_imge", value="rayproject/ray"), V, "worker_imge",
                 id="unknown-docker-key"),
    # cross-field checks
    pytest.param(_set("head_node_type", value="head"), ValueError, "head_node_type",
                 id="head-type-not-a-node-type"),
    pytest.param(_set("available_node_types", "gpu_g5_xlarge", "min_workers", value=11), ValueError,
                 "max_workers", id="min-workers-above-global-max"),
]


@pytest.mark.parametrize(("mutate", "error", "key"), BROKEN)
def test_broken_copy_fails_naming_the_key(offline, mutate, error, key):
    broken = copy.deepcopy(CONFIG)
    mutate(broken)
    with pytest.raises(error) as info:
        ray_validate(broken)
    # str() is what `ray up` prints; for schema errors it ends with "On instance['max_workers']: ..."
    assert key in str(info.value), str(info.value)
    if isinstance(info.value, jsonschema.ValidationError):
        assert key in info.value.message or key in info.value.absolute_path


GAPS = [
    pytest.param(_drop("cluster_name"), id="required-cluster_name-missing-becomes-default"),
    pytest.param(_drop("head_setup_commands"), id="head_setup_commands-missing-takes-rays-default"),
    pytest.param(_set("provider", "regoin", value="eu-west-1"), id="typo-inside-provider"),
    pytest.param(_set("available_node_types", "gpu_g5_xlarge", "node_config", "InstanceTyp", value="g5.xlarge"),
                 id="typo-inside-node_config"),
]


@pytest.mark.parametrize("mutate", GAPS)
def test_what_rays_validation_lets_through(offline, mutate):
    """Recorded so that the gap is known: these broken copies pass Ray's offline validation (`provider`
    and `node_config` are open objects; missing keys are filled from defaults.yaml before the schema
    sees them). The security, IAM and software tests below check those parts of the file instead.
    If Ray starts rejecting one of them, drop it from this list."""
    broken = copy.deepcopy(CONFIG)
    mutate(broken)
    ray_validate(broken)


def test_commands_of_the_wrong_type_fail_without_naming_the_key(offline):
    """A string instead of a list of commands is caught before the schema, by merge_setup_commands
    concatenating lists, with a message that does not say which key is wrong."""
    broken = copy.deepcopy(CONFIG)
    broken["setup_commands"] = "pip install nas_lth"
    with pytest.raises(TypeError, match="can only concatenate"):
        ray_validate(broken)


# ------------------------------------------------------------------------------------------------- security


def _covers(rule: dict, port: int) -> bool:
    if str(rule.get("IpProtocol")) in ("-1", "all"):
        return True
    lo, hi = rule.get("FromPort", -1), rule.get("ToPort", -1)
    return lo in (None, -1) or hi in (None, -1) or lo <= port <= hi


def _outside_sources(rule: dict) -> list[str]:
    """Sources that are not a security group: CIDR blocks and prefix lists."""
    return ([r["CidrIp"] for r in rule.get("IpRanges", [])] + [r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])]
            + [p["PrefixListId"] for p in rule.get("PrefixListIds", [])])


def _check_ingress(rules: list[dict]) -> None:
    for rule in rules:
        sources = _outside_sources(rule)
        for port in CLOSED_PORTS:
            assert not (sources and _covers(rule, port)), f"port {port} is open to {sources}: {rule}"
        if WORLD & set(sources):
            assert (str(rule.get("IpProtocol")), rule.get("FromPort"), rule.get("ToPort")) == ("tcp", 22, 22), \
                f"a rule open to the whole internet must be SSH only: {rule}"


@pytest.mark.parametrize("rule", [
    {"IpProtocol": "tcp", "FromPort": 8265, "ToPort": 8265, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]},
    {"IpProtocol": "tcp", "FromPort": 10000, "ToPort": 10010, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
    {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
    {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "PrefixListIds": [{"PrefixListId": "pl-123"}]},
], ids=["dashboard-from-cidr", "client-in-a-range", "everything-from-world", "https-from-world-v6", "prefix-list"])
def test_ingress_check_rejects_open_rules(rule):
    with pytest.raises(AssertionError):
        _check_ingress([rule])


def test_declared_ingress_is_ssh_from_a_cidr_only():
    rules = CONFIG["provider"]["security_group"]["IpPermissions"]
    _check_ingress(rules)
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in rules] == [("tcp", 22, 22)]
    cidrs = _outside_sources(rules[0])
    assert cidrs and not WORLD & set(cidrs), "SSH should come from a configurable CIDR, not the internet"


def _ray_default_inbound_rules():
    """Ray's own functions that build the security-group rules (ray.autoscaler._private.aws.config), taken
    from the installed source: importing that module needs boto3, which this environment lacks, and these
    three functions are pure."""
    wanted = ("_create_default_inbound_rules", "_create_default_intracluster_inbound_rules",
              "_create_default_ssh_inbound_rules")
    origin = importlib.util.find_spec("ray.autoscaler._private.aws.config").origin
    tree = ast.parse(Path(origin).read_text())
    funcs = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in wanted]
    assert sorted(f.name for f in funcs) == sorted(wanted), f"Ray moved its security-group code ({origin})"
    namespace = {"itertools": itertools}
    exec(compile(ast.Module(body=funcs, type_ignores=[]), origin, "exec"), namespace)
    return namespace["_create_default_inbound_rules"]


def test_rules_ray_writes_keep_dashboard_and_client_closed():
    """The rules Ray's AWS provider authorizes on the group it creates: its defaults + our IpPermissions."""
    for node_type in CONFIG["available_node_types"].values():
        assert "SecurityGroupIds" not in node_type["node_config"], \
            "with SecurityGroupIds Ray uses that group as it is, and this test does not see its rules"
    cluster_sg = "sg-0cluster"
    rules = _ray_default_inbound_rules()({cluster_sg}, CONFIG["provider"]["security_group"]["IpPermissions"])
    _check_ingress(rules)
    for rule in rules:
        groups = {pair["GroupId"] for pair in rule.get("UserIdGroupPairs", [])}
        assert groups <= {cluster_sg}, rule
    # Ray 2.60 adds SSH from anywhere by itself; cluster.yaml and the README explain how to remove it.
    world_ssh = [r for r in rules if WORLD & set(_outside_sources(r))]
    assert world_ssh, "Ray no longer opens SSH to 0.0.0.0/0: update the comments in cluster.yaml and the docs"


def _auth_modes(text: str) -> set[str]:
    """Every value RAY_AUTH_MODE is given (shell, YAML or JSON syntax), plus "disabled" if that word follows
    the name anywhere."""
    modes = {m.lower() for m in re.findall(r"RAY_AUTH_MODE[\"']?\s*[=:]\s*[\"']?(\w+)", text, flags=re.IGNORECASE)}
    return modes | ({"disabled"} if re.search(r"RAY_AUTH_MODE\W{0,5}disabled", text, flags=re.IGNORECASE) else set())


@pytest.mark.parametrize("line", ["RAY_AUTH_MODE=disabled ray start", "export RAY_AUTH_MODE='disabled'",
                                  "env_vars: {RAY_AUTH_MODE: disabled}", '{"RAY_AUTH_MODE": "disabled"}'])
def test_auth_mode_check_sees_disabled(line):
    assert "disabled" in _auth_modes(TEXT + "\n" + line)


def test_token_authentication_stays_on():
    assert _auth_modes(TEXT) == {"token"}, "RAY_AUTH_MODE must only ever be set to token"
    for kind in ("head", "worker"):
        start = " ".join(CONFIG[f"{kind}_start_ray_commands"])
        assert "RAY_AUTH_MODE=token ray start" in start, start
    assert CONFIG["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token", "every node needs the token"
    assert "RAY_AUTH_TOKEN=" not in TEXT, "the token must not be written into the config"


def test_dashboard_listens_on_loopback_only():
    start = " ".join(CONFIG["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start
    assert "0.0.0.0" not in start


def test_every_node_type_has_an_instance_profile_for_s3():
    for name, node_type in CONFIG["available_node_types"].items():
        profile = node_type["node_config"].get("IamInstanceProfile", {})
        assert profile.get("Arn") or profile.get("Name"), f"{name}: no IamInstanceProfile, no S3 access"


# ------------------------------------------------------------------------------------------------- software


def _pip_installs(commands: list[str]) -> list[tuple[int, dict[str, str], list[Requirement]]]:
    """(position, options, requirements) of each `pip install` in a list of shell commands."""
    valued = {"-i", "--index-url", "--extra-index-url", "-e", "--editable", "-c", "-r", "-f", "--find-links"}
    out = []
    for pos, cmd in enumerate(commands):
        tokens = shlex.split(cmd, comments=True)
        if tokens[:2] != ["pip", "install"]:
            continue
        options, reqs, it = {}, [], iter(tokens[2:])
        for tok in it:
            if tok in valued:
                options[tok] = next(it)
            elif not tok.startswith("-"):
                try:
                    reqs.append(Requirement(tok))
                except InvalidRequirement:  # a path
                    pass
        out.append((pos, options, reqs))
    return out


def _pyproject_requirement(name: str) -> Requirement:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(r for r in map(Requirement, deps) if r.name == name)


def test_torch_is_installed_in_the_pyproject_range_with_the_right_build():
    allowed = _pyproject_requirement("torch").specifier
    grid = [Version(f"{a}.{b}.{c}") for a in range(1, 5) for b in range(31) for c in range(4)]
    prepared = ray_validate(CONFIG)
    for kind in ("head", "worker"):
        commands = prepared[f"{kind}_setup_commands"]
        installs = _pip_installs(commands)
        torch = [(pos, opts, r) for pos, opts, reqs in installs for r in reqs if r.name == "torch"]
        assert len(torch) == 1, f"{kind}: torch should be installed exactly once: {commands}"
        pos, opts, req = torch[0]
        assert req.specifier, f"{kind}: unpinned torch"
        inside = [v for v in grid if v in req.specifier]
        assert inside, f"{kind}: torch{req.specifier} admits no version"
        assert all(v in allowed for v in inside), f"{kind}: torch{req.specifier} is wider than pyproject's {allowed}"
        index = opts.get("--index-url", "") + opts.get("-i", "") + opts.get("--extra-index-url", "")
        if kind == "head":
            assert index == "https://download.pytorch.org/whl/cpu", "the head only needs the CPU build"
        else:
            assert not index, "GPU workers take torch from PyPI, the CUDA build on Linux x86_64"
        # nas_lth comes after torch, so that pip does not pick a torch build for it
        nas_lth = [p for p, o, _ in installs if o.get("-e", "").rstrip("/").endswith("nas_lth")]
        assert nas_lth and min(nas_lth) > pos, f"{kind}: install nas_lth after torch: {commands}"


def test_one_ray_version_everywhere():
    version = ray.__version__  # the Ray that runs `ray up` and validated this file
    pins = {str(r.specifier) for _, _, reqs in _pip_installs(CONFIG["head_setup_commands"]
                                                            + CONFIG["worker_setup_commands"])
            for r in reqs if r.name == "ray"}
    assert pins == {f"=={version}"}, pins
    assert _pyproject_requirement("ray").specifier.contains(version)
    requires_python = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    for key in ("head_image", "worker_image"):
        image = CONFIG["docker"][key]
        match = re.fullmatch(r"rayproject/ray:(?P<ray>[\d.]+)-py3(?P<minor>\d+)-(?P<platform>cpu|gpu|cu\d+)", image)
        assert match, image
        assert match["ray"] == version, f"{image} is not Ray {version}"
        assert f"3.{match['minor']}" in requires_python, image
    assert CONFIG["docker"]["worker_image"].endswith("-gpu") and CONFIG["docker"]["head_image"].endswith("-cpu")
