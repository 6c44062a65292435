#!/usr/bin/env python3
"""A Keptn 1.x client written from Keptn's API (api-service swagger, shipyard-controller's
control plane, go-utils' models), with nothing of Shipyard's: it drives one delivery end to end
as the `keptn` CLI and an integration (job-executor-service in remote mode) would.

  1. as the CLI: auth, metadata, project and its services, trigger delivery;
  2. as an integration: register, ping, poll the open `.triggered` events of its subscriptions,
     read `job/config.yaml` from the resource-service, send `.started` and `.finished`;
  3. as an approver: find `approval.triggered`, send `approval.finished`;
  4. read the datastore until the production delivery has finished.

Environment: KEPTN_API_ENDPOINT (http://host:port/api), CLI_TOKEN, INTEGRATION_TOKEN,
APPROVER_TOKEN, PROJECT, SERVICE, IMAGE. Exits 0 when the delivery passed every stage; prints
what it did, one line a step, and why it failed otherwise.
"""
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ENDPOINT = os.environ["KEPTN_API_ENDPOINT"].rstrip("/")
PROJECT = os.environ.get("PROJECT", "podtato")
SERVICE = os.environ.get("SERVICE", "helloservice")
IMAGE = os.environ.get("IMAGE", "ghcr.io/podtato-head/podtatoserver:v0.1.1")
DEADLINE = time.monotonic() + float(os.environ.get("TIMEOUT", "120"))


def call(method, path, token, body=None, expect=(200,)):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(ENDPOINT + path, data=data, method=method)
    request.add_header("x-token", token)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    if status not in expect:
        # Keptn's error model: {"code": int, "message": string}
        sys.exit(f"{method} {path}: {status} {raw[:500]!r}")
    if not raw:
        return None
    return json.loads(raw)


def step(text):
    print(text, flush=True)


def cli(token):
    assert call("POST", "/v1/auth", token, expect=(200, 204)) in (None, {}), "auth must answer an empty body or {}"
    metadata = call("GET", "/v1/metadata", token)
    assert isinstance(metadata.get("automaticprovisioning"), bool), metadata
    step(f"auth ok; keptnversion {metadata['keptnversion']}")
    project = call("GET", f"/controlPlane/v1/project/{PROJECT}", token)
    stage = project["stages"][0]["stageName"]
    services = call("GET", f"/controlPlane/v1/project/{PROJECT}/stage/{stage}/service", token)
    names = [s["serviceName"] for s in services["services"]]
    assert SERVICE in names, f"{SERVICE} not in {names}"
    event = {
        "data": {"project": PROJECT, "stage": stage, "service": SERVICE,
                 "configurationChange": {"values": {"image": IMAGE}},
                 "deployment": {"deploymentURIsLocal": None, "deploymentstrategy": ""}},
        "id": str(uuid.uuid4()),
        "source": "https://github.com/keptn/keptn/cli#configuration-change",
        "specversion": "1.0",
        "time": "0001-01-01T00:00:00Z",
        "type": f"sh.keptn.event.{stage}.delivery.triggered",
    }
    context = call("POST", "/v1/event", token, event)["keptnContext"]
    step(f"triggered {stage}.delivery: keptnContext {context}")
    return context


class Integration:
    def __init__(self, token, events):
        self.token = token
        registration = {
            "id": "", "name": "python-integration",
            "metadata": {"hostname": "test-host", "integrationversion": "1.0.0", "distributorversion": "0.15.0",
                         "location": "control-plane",
                         "kubernetesmetadata": {"namespace": "keptn", "podname": "p", "deploymentname": "d"}},
            "subscriptions": [{"id": "", "event": e, "filter": {"projects": None, "stages": None, "services": None}}
                              for e in events],
        }
        self.id = call("POST", "/controlPlane/v1/uniform/registration", token, registration, expect=(200, 201))["id"]
        self.handled = set()
        step(f"registered as {self.id}")

    def subscriptions(self):
        return call("PUT", f"/controlPlane/v1/uniform/registration/{self.id}/ping", token=self.token)["subscriptions"]

    def poll(self):
        """Every open event of each subscription, paged as the go-sdk pages."""
        for subscription in self.subscriptions():
            key = ""
            while True:
                query = "?" + urllib.parse.urlencode({"nextPageKey": key}) if key else ""
                page = call("GET", f"/controlPlane/v1/event/triggered/{subscription['event']}{query}", self.token)
                for event in page.get("events") or []:
                    if (subscription["id"], event["id"]) not in self.handled:
                        self.handled.add((subscription["id"], event["id"]))
                        yield event
                key = page.get("nextPageKey", "")
                if key in ("", "0"):
                    break

    def answer(self, triggered, phase, data):
        task = triggered["type"][len("sh.keptn.event."):-len(".triggered")]
        event = {
            "id": str(uuid.uuid4()), "triggeredid": triggered["id"], "shkeptncontext": triggered["shkeptncontext"],
            "contenttype": "application/json", "source": "python-integration", "shkeptnspecversion": "0.2.4",
            "specversion": "1.0", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "type": f"sh.keptn.event.{task}.{phase}", "data": data,
        }
        reply = call("POST", "/v1/event", self.token, event)
        assert reply["keptnContext"] == triggered["shkeptncontext"], reply

    def run(self, triggered):
        data = triggered["data"]
        base = {k: data[k] for k in ("project", "stage", "service")}
        project = f"/resource-service/v1/project/{base['project']}"
        stage = f"{project}/stage/{base['stage']}"
        service = f"{stage}/service/{urllib.parse.quote(base['service'], safe='')}"
        # job-executor-service escapes the URI twice (url.QueryEscape in JES and in go-utils), and
        # looks at the service, the stage (both at the event's commit), then the project.
        uri = urllib.parse.quote(urllib.parse.quote("job/config.yaml", safe=""), safe="")
        commit = triggered.get("gitcommitid") or ""
        resource = None
        for scope, query in ((service, f"?gitCommitID={commit}"), (stage, f"?gitCommitID={commit}"), (project, "?")):
            resource = call("GET", f"{scope}/resource/{uri}{query}", self.token, expect=(200, 404))
            if resource and "resourceContent" in resource:
                break
        if resource is None or "resourceContent" not in resource:
            step(f"{triggered['type']}: no job/config.yaml for {base['stage']}/{base['service']}")
            return
        config = base64.b64decode(resource["resourceContent"]).decode()
        assert "actions" in config, config
        self.answer(triggered, "started", base)
        self.answer(triggered, "finished", dict(base, status="succeeded", result="pass", message="ran by python"))
        step(f"{triggered['type']} in {base['stage']}: started and finished")


def main():
    context = cli(os.environ["CLI_TOKEN"])
    integration = Integration(os.environ["INTEGRATION_TOKEN"],
                              ["sh.keptn.event.deployment.triggered", "sh.keptn.event.test.triggered"])
    approver = os.environ["APPROVER_TOKEN"]
    approved = set()
    while time.monotonic() < DEADLINE:
        for event in integration.poll():
            if event["shkeptncontext"] == context:
                integration.run(event)
        # `keptn get event approval.triggered` and `keptn send event approval.finished`.
        approvals = call("GET", f"/controlPlane/v1/event/triggered/sh.keptn.event.approval.triggered?project={PROJECT}", approver)
        for event in approvals.get("events") or []:
            if event["shkeptncontext"] == context and event["id"] not in approved:
                approved.add(event["id"])
                data = event["data"]
                call("POST", "/v1/event", approver, {
                    "shkeptncontext": context, "triggeredid": event["id"], "source": "https://github.com/keptn/keptn/cli",
                    "specversion": "1.0", "type": "sh.keptn.event.approval.finished",
                    "data": {"project": data["project"], "stage": data["stage"], "service": data["service"],
                             "status": "succeeded", "result": "pass"}})
                step(f"approved {data['stage']}")
        # `keptn get event`: newest first.
        found = call("GET", "/mongodb-datastore/event?" + urllib.parse.urlencode(
            {"project": PROJECT, "keptnContext": context, "type": "sh.keptn.event.production.delivery.finished", "pageSize": 5}),
            os.environ["CLI_TOKEN"])
        if found.get("events"):
            result = found["events"][0]["data"].get("result")
            step(f"production.delivery.finished: {result}")
            sys.exit(0 if result == "pass" else f"production ended with {result}")
        time.sleep(0.5)
    sys.exit("the delivery did not finish in time")


if __name__ == "__main__":
    main()
