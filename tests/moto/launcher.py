#!/usr/bin/env python3
"""moto in server mode for nodewright's adapter tests.

    python3 tests/moto/launcher.py [--host 127.0.0.1] [--port 0]

Prints `PORT=<n>` as the first stdout line once the socket is bound (port 0 picks a free one),
then `READY` once the seed data is in place; exits 0 on SIGTERM or SIGINT, and with
`--exit-with-stdin` also when its stdin closes (so a test process that dies without cleaning up
does not leave moto behind). Request logs go to stderr with `--verbose`.

On top of plain moto it:

* seeds the public EKS-optimized and Bottlerocket AMIs and the SSM parameters that name them
  (moto has neither) for Kubernetes 1.30-1.34 in us-east-1: for every version two releases,
  v20240703 and v20240807 (the recommended one), x86_64 and arm64, standard and NVIDIA
  variants (AL2: `amazon-linux-2`, `-arm64`, `-gpu`), so aliases such as `al2023@latest`,
  `al2023@v20240703` and `bottlerocket@v1.20.3` resolve to describable images;
* answers a test-only control API (JSON bodies, any HTTP method but GET):
  - POST /_nodewright/fail
      {"service": "ec2", "action": "CreateFleet", "code": "InsufficientInstanceCapacity",
       "count": 2, "status": 400, "message": "optional"}
    the next `count` calls of that action fail with that error code, in the protocol's shape
    (EC2 query XML, awsJson `__type` for JSON services);
  - POST /_nodewright/fleet_errors
      {"fleet_errors": [{"instance_type": "m5.large", "subnet_id": "optional",
                         "code": "InsufficientInstanceCapacity", "message": "optional"}],
       "count": 1}
    the next `count` CreateFleet calls (every call until reset when `count` is absent) skip
    the overrides that match and report them in the response's `errorSet`, the way EC2
    reports per-override capacity failures; a fleet left without overrides launches nothing;
  - POST /_nodewright/reset  forgets every injection (moto's own state is kept);
  - POST /_nodewright/calls  answers {"calls": [{"at_ms", "service", "action"}, ...]}, every
    AWS call received so far with its wall-clock time, for latency measurements.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import io
import json
import logging
import re
import signal
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, urlencode

from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.ssm.models import Parameter, ssm_backends
from werkzeug.serving import make_server

ACCOUNT = "123456789012"
REGION = "us-east-1"
K8S_VERSIONS = ["1.30", "1.31", "1.32", "1.33", "1.34"]
# (release, creation date); the last one is what `recommended` / `latest` names.
RELEASES = [("v20240703", "2024-07-03T00:00:00.000Z"), ("v20240807", "2024-08-07T00:00:00.000Z")]
EKS_OWNER = "602401143452"
BOTTLEROCKET_OWNER = "092701018921"
BOTTLEROCKET_RELEASES = {"v20240703": "1.20.3", "v20240807": "1.21.0"}

JSON = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Seed data


def seed(region: str) -> int:
    """Registers the EKS AMIs in moto's EC2 backend and their SSM parameters; returns the count."""
    ec2 = ec2_backends[ACCOUNT][region]
    params = ssm_backends[ACCOUNT][region]._parameters
    counter = 0

    def image(name: str, arch: str, owner: str, created: str) -> str:
        nonlocal counter
        counter += 1
        ami_id = f"ami-0e{counter:015x}"
        ec2.amis[ami_id] = Ami(
            ec2,
            ami_id,
            name=name,
            description=name,
            owner_id=owner,
            owner_alias="amazon",
            public=True,
            virtualization_type="hvm",
            architecture=arch,
            creation_date=datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ"),
            hypervisor="xen",
            root_device_type="ebs",
            root_device_name="/dev/xvda",
            region_name=f"{region}a",
        )
        return ami_id

    def parameter(name: str, value: str) -> None:
        params[name].append(
            Parameter(
                account_id=ACCOUNT,
                name=name,
                value=value,
                parameter_type="String",
                description=None,
                allowed_pattern=None,
                keyid=None,
                last_modified_date=datetime.datetime.now(datetime.timezone.utc),
                version=1,
                data_type="aws:ec2:image",
            )
        )

    for k8s in K8S_VERSIONS:
        base = f"/aws/service/eks/optimized-ami/{k8s}"
        for i, (release, created) in enumerate(RELEASES):
            latest = i == len(RELEASES) - 1
            for arch in ("x86_64", "arm64"):
                for variant in ("standard", "nvidia"):
                    name = f"amazon-eks-node-al2023-{arch}-{variant}-{k8s}-{release}"
                    ami = image(name, arch, EKS_OWNER, created)
                    prefix = f"{base}/amazon-linux-2023/{arch}/{variant}"
                    parameter(f"{prefix}/{name}/image_id", ami)
                    if latest:
                        parameter(f"{prefix}/recommended/image_id", ami)
            for path, arch, stem in (
                ("amazon-linux-2", "x86_64", "amazon-eks-node"),
                ("amazon-linux-2-arm64", "arm64", "amazon-eks-arm64-node"),
                ("amazon-linux-2-gpu", "x86_64", "amazon-eks-gpu-node"),
            ):
                name = f"{stem}-{k8s}-{release}"
                ami = image(name, arch, EKS_OWNER, created)
                parameter(f"{base}/{path}/{name}/image_id", ami)
                if latest:
                    parameter(f"{base}/{path}/recommended/image_id", ami)
            br_version = BOTTLEROCKET_RELEASES[release]
            for arch in ("x86_64", "arm64"):
                for flavour in (f"aws-k8s-{k8s}", f"aws-k8s-{k8s}-nvidia"):
                    name = f"bottlerocket-{flavour}-{arch}-v{br_version}"
                    ami = image(name, arch, BOTTLEROCKET_OWNER, created)
                    prefix = f"/aws/service/bottlerocket/{flavour}/{arch}"
                    parameter(f"{prefix}/{br_version}/image_id", ami)
                    if latest:
                        parameter(f"{prefix}/latest/image_id", ami)
    return counter


# ---------------------------------------------------------------------------------------------
# Failure injection


class Injections:
    """What the control API asked for; shared by the server's request threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: dict[tuple[str, str], list[JSON]] = {}
        self.fleet_errors: list[JSON] = []
        self.fleet_errors_left: int | None = None
        # (epoch milliseconds, service, action) of every AWS call received, for latency
        # measurements; bounded so a long test run cannot grow it without end.
        self.calls: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=100_000)

    def record(self, service: str, action: str) -> None:
        with self.lock:
            self.calls.append((time.time() * 1000.0, service, action))

    def reset(self) -> None:
        with self.lock:
            self.failures.clear()
            self.fleet_errors = []
            self.fleet_errors_left = None

    def add_failure(self, spec: JSON) -> None:
        key = (str(spec["service"]).lower(), str(spec["action"]))
        entry = {
            "code": str(spec["code"]),
            "status": int(spec.get("status", 400)),
            "message": str(spec.get("message", f"injected {spec['code']}")),
            "left": int(spec.get("count", 1)),
        }
        with self.lock:
            self.failures.setdefault(key, []).append(entry)

    def take_failure(self, service: str, action: str) -> JSON | None:
        with self.lock:
            queue = self.failures.get((service, action))
            while queue:
                head = queue[0]
                if head["left"] <= 0:
                    queue.pop(0)
                    continue
                head["left"] -= 1
                return dict(head)
            return None

    def set_fleet_errors(self, spec: JSON) -> None:
        errors = []
        for e in spec.get("fleet_errors", []):
            errors.append(
                {
                    "instance_type": e.get("instance_type"),
                    "subnet_id": e.get("subnet_id"),
                    "code": str(e.get("code", "InsufficientInstanceCapacity")),
                    "message": str(
                        e.get(
                            "message",
                            "We currently do not have sufficient capacity in the Availability Zone you requested.",
                        )
                    ),
                }
            )
        with self.lock:
            self.fleet_errors = errors
            self.fleet_errors_left = int(spec["count"]) if "count" in spec else None

    def take_fleet_errors(self) -> list[JSON]:
        with self.lock:
            if not self.fleet_errors:
                return []
            if self.fleet_errors_left is not None:
                if self.fleet_errors_left <= 0:
                    return []
                self.fleet_errors_left -= 1
            return list(self.fleet_errors)


CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
OVERRIDE_KEY = re.compile(r"^LaunchTemplateConfigs\.(\d+)\.Overrides\.(\d+)\.(.+)$")
EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def request_id() -> str:
    return str(uuid.uuid4())


def xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# Services moto does not implement; answered here the way moto answers them (HTTP 500).
UNSERVED = {"pricing"}


class Middleware:
    """WSGI middleware around moto: the control API, injected errors, fleet errorSets."""

    def __init__(self, app: Callable[..., Any], injections: Injections) -> None:
        self.app = app
        self.injections = injections

    def __call__(self, environ: JSON, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_nodewright/"):
            return self.control(path, environ, start_response)

        body = read_body(environ)
        service, action, is_json = identify(environ, body)
        if service and action:
            self.injections.record(service, action)
        if service in UNSERVED:
            # moto has no backend for these; left to moto, the failed lookup leaves its app
            # lock held and every later request to that service hangs.
            failure = {
                "code": "InternalFailure",
                "message": f"moto does not implement the {service} API",
                "status": 500,
            }
            return error_response(start_response, service, failure, is_json, environ)
        if service and action:
            failure = self.injections.take_failure(service, action)
            if failure is not None:
                return error_response(start_response, service, failure, is_json, environ)
            if service == "ec2" and action == "CreateFleet":
                fleet_errors = self.injections.take_fleet_errors()
                if fleet_errors:
                    return self.create_fleet_with_errors(environ, body, fleet_errors, start_response)
        return self.app(environ, start_response)

    def control(self, path: str, environ: JSON, start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            raw = read_body(environ)
            spec = json.loads(raw) if raw.strip() else {}
            if path == "/_nodewright/fail":
                self.injections.add_failure(spec)
            elif path == "/_nodewright/fleet_errors":
                self.injections.set_fleet_errors(spec)
            elif path == "/_nodewright/reset":
                self.injections.reset()
            elif path == "/_nodewright/calls":
                with self.injections.lock:
                    calls = [{"at_ms": at, "service": sv, "action": ac} for at, sv, ac in self.injections.calls]
                return respond(start_response, "200 OK", json.dumps({"calls": calls}).encode())
            else:
                return respond(start_response, "404 Not Found", b'{"error":"unknown control path"}')
        except (KeyError, ValueError, TypeError) as e:
            body = json.dumps({"error": f"bad control request: {e!r}"}).encode()
            return respond(start_response, "400 Bad Request", body)
        return respond(start_response, "200 OK", b'{"ok":true}')

    def create_fleet_with_errors(
        self,
        environ: JSON,
        body: bytes,
        fleet_errors: list[JSON],
        start_response: Callable[..., Any],
    ) -> Iterable[bytes]:
        params = parse_qsl(body.decode(), keep_blank_values=True)
        lifecycle = "on-demand"
        configs: dict[int, dict[int, dict[str, str]]] = {}
        specs: dict[int, dict[str, str]] = {}
        rest: list[tuple[str, str]] = []
        for k, v in params:
            if k == "TargetCapacitySpecification.DefaultTargetCapacityType":
                lifecycle = v
            m = OVERRIDE_KEY.match(k)
            if m:
                configs.setdefault(int(m[1]), {}).setdefault(int(m[2]), {})[m[3]] = v
                continue
            m = re.match(r"^LaunchTemplateConfigs\.(\d+)\.LaunchTemplateSpecification\.(.+)$", k)
            if m:
                specs.setdefault(int(m[1]), {})[m[2]] = v
            rest.append((k, v))

        def failing(override: dict[str, str]) -> JSON | None:
            for e in fleet_errors:
                if e["instance_type"] and e["instance_type"] != override.get("InstanceType"):
                    continue
                if e["subnet_id"] and e["subnet_id"] != override.get("SubnetId"):
                    continue
                return e
            return None

        errors_xml = []
        kept: list[tuple[str, str]] = []
        remaining = 0
        for ci in sorted(configs):
            n = 0
            for oi in sorted(configs[ci]):
                override = configs[ci][oi]
                e = failing(override)
                if e is None:
                    n += 1
                    remaining += 1
                    kept += [(f"LaunchTemplateConfigs.{ci}.Overrides.{n}.{f}", v) for f, v in override.items()]
                    continue
                errors_xml.append(error_item(specs.get(ci, {}), override, lifecycle, e))
        error_set = "<errorSet>" + "".join(errors_xml) + "</errorSet>"

        if remaining == 0:
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<CreateFleetResponse xmlns="{EC2_XMLNS}">'
                f"<requestId>{request_id()}</requestId>"
                f"<fleetId>fleet-{uuid.uuid4().hex[:17]}</fleetId>"
                f"{error_set}<fleetInstanceSet/></CreateFleetResponse>"
            ).encode()
            return respond(start_response, "200 OK", payload, "text/xml")

        new_body = urlencode(rest + kept).encode()
        environ["wsgi.input"] = io.BytesIO(new_body)
        environ["CONTENT_LENGTH"] = str(len(new_body))
        captured: JSON = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = status
            captured["headers"] = headers
            return lambda _data: None

        chunks = self.app(environ, capture)
        try:
            out = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        status = captured.get("status", "500 Internal Server Error")
        if status.startswith("200"):
            text = out.decode()
            if "<errorSet/>" in text:
                text = text.replace("<errorSet/>", error_set, 1)
            elif "</fleetId>" in text:
                text = text.replace("</fleetId>", "</fleetId>" + error_set, 1)
            out = text.encode()
        headers = [(h, v) for h, v in captured.get("headers", []) if h.lower() != "content-length"]
        headers.append(("Content-Length", str(len(out))))
        start_response(status, headers)
        return [out]


def error_item(spec: dict[str, str], override: dict[str, str], lifecycle: str, e: JSON) -> str:
    lt = "".join(
        f"<{tag}>{xml_escape(spec[key])}</{tag}>"
        for key, tag in (
            ("LaunchTemplateId", "launchTemplateId"),
            ("LaunchTemplateName", "launchTemplateName"),
            ("Version", "version"),
        )
        if key in spec
    )
    ov = "".join(
        f"<{key[0].lower() + key[1:]}>{xml_escape(value)}</{key[0].lower() + key[1:]}>"
        for key, value in override.items()
        if "." not in key
    )
    return (
        "<item><launchTemplateAndOverrides>"
        f"<launchTemplateSpecification>{lt}</launchTemplateSpecification>"
        f"<overrides>{ov}</overrides></launchTemplateAndOverrides>"
        f"<lifecycle>{xml_escape(lifecycle)}</lifecycle>"
        f"<errorCode>{xml_escape(e['code'])}</errorCode>"
        f"<errorMessage>{xml_escape(e['message'])}</errorMessage></item>"
    )


def read_body(environ: JSON) -> bytes:
    """Reads the request body and puts it back so that moto can read it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def identify(environ: JSON, body: bytes) -> tuple[str | None, str | None, bool]:
    """(signing service name, action, whether the protocol is awsJson)."""
    service = None
    m = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if m:
        service = m[1].lower()
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return service, target.rsplit(".", 1)[-1], True
    action = None
    for k, v in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        if k == "Action":
            action = v
    if action is None and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        for k, v in parse_qsl(body.decode(errors="replace"), keep_blank_values=True):
            if k == "Action":
                action = v
                break
    return service, action, False


def error_response(
    start_response: Callable[..., Any], service: str, failure: JSON, is_json: bool, environ: JSON
) -> Iterable[bytes]:
    status = f"{failure['status']} Injected"
    code, message = failure["code"], failure["message"]
    if is_json:
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = environ.get("CONTENT_TYPE") or "application/x-amz-json-1.0"
        return respond(start_response, status, body, content_type, [("x-amzn-ErrorType", code)])
    if service == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{xml_escape(code)}</Code><Message>{xml_escape(message)}</Message>"
            f"</Error></Errors><RequestID>{request_id()}</RequestID></Response>"
        )
    else:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type>'
            f"<Code>{xml_escape(code)}</Code><Message>{xml_escape(message)}</Message>"
            f"</Error><RequestId>{request_id()}</RequestId></ErrorResponse>"
        )
    return respond(start_response, status, body.encode(), "text/xml")


def respond(
    start_response: Callable[..., Any],
    status: str,
    body: bytes,
    content_type: str = "application/json",
    extra: list[tuple[str, str]] | None = None,
) -> Iterable[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    start_response(status, headers + (extra or []))
    return [body]


# ---------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--exit-with-stdin", action="store_true", help="stop when stdin closes")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)

    seed(REGION)
    app = Middleware(DomainDispatcherApplication(create_backend_app), Injections())
    server = make_server(args.host, args.port, app, threaded=True)

    def stop(_signum: int, _frame: Any) -> None:
        # shutdown() waits for serve_forever to return, so it must not run on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    if args.exit_with_stdin:

        def watch_stdin() -> None:
            while sys.stdin.buffer.read(4096):
                pass
            server.shutdown()

        threading.Thread(target=watch_stdin, daemon=True).start()

    print(f"PORT={server.server_port}", flush=True)
    print("READY", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
