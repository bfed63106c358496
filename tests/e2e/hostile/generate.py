#!/usr/bin/env python3
"""Writes corpus.json: hostile Canary, MetricTemplate and AlertProvider cases for
tests/e2e/hostile_test.cpp (issue 11), each with the outcome canaryd must produce.

    python3 tests/e2e/hostile/generate.py > tests/e2e/hostile/corpus.json

A case is {"name", "canary", "target", "objects", "expect": {"outcome", "text"}}:
  objects   applied in order into namespace demo (the last one is the hostile one);
  canary    the Canary whose condition or Events show the outcome ("" for admission cases);
  target    a Deployment the test creates for the case first ("" for none);
  outcome   admission  kubectl apply is refused by the CRD schema, stderr names `text`;
            field      Promoted=False, reason InvalidSpec, message names `text`, Warning Event;
            refused    Promoted=False, reason Refused, message names `text`, Warning Event;
            condition  the Promoted message names `text`, and a Warning Event does;
            event      a Warning Event on the Canary names `text`.
The healthy application is podinfo (Canary podinfo, its primary and Services): many cases aim at
it on purpose.
"""
import copy
import json
import sys

cases = []


def canary(name, target="podinfo", analysis=None, spec=None, service=None, drop=()):
    a = {"interval": "1s", "threshold": 2, "iterations": 3}
    if analysis is not None:
        a.update(analysis)
    sv = {"port": 9898}
    if service is not None:
        sv.update(service)
    s = {"provider": "kubernetes",
         "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
         "service": sv, "analysis": a}
    if spec is not None:
        s.update(spec)
    for path in drop:
        node = s
        *head, last = path.split(".")
        for k in head:
            node = node[k]
        node.pop(last, None)
        # an emptied analysis map stays
    return {"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": name, "namespace": "demo"}, "spec": s}


def add(name, outcome, text, objects, canary_name=None, target=""):
    if canary_name is None:
        canary_name = name if outcome != "admission" else ""
    cases.append({"name": name, "canary": canary_name, "target": target, "objects": objects,
                  "expect": {"outcome": outcome, "text": text}})


def field(name, text, **kw):
    add(name, "field", text, [canary(name, **kw)])


def admission(name, text, obj):
    add(name, "admission", text, [obj])


# ---- decode-time refusals: Promoted=False naming the field --------------------------------------
n = 0


def fid():
    global n
    n += 1
    return f"f{n:03d}"


for w in (101, 150, 1000):
    field(fid(), "spec.analysis.maxWeight", analysis={"iterations": 0, "stepWeight": 10, "maxWeight": w})
for w in (101, -5, 250):
    field(fid(), "spec.analysis.stepWeight", analysis={"iterations": 0, "stepWeight": w})
field(fid(), "spec.analysis.stepWeightPromotion", analysis={"stepWeightPromotion": 101})
field(fid(), "spec.analysis.mirrorWeight", analysis={"mirrorWeight": 120})
field(fid(), "spec.analysis.primaryReadyThreshold", analysis={"primaryReadyThreshold": 101})
field(fid(), "spec.analysis.canaryReadyThreshold", analysis={"canaryReadyThreshold": -1})
for ws, at in (([10, 50, 150], 2), ([0, 50], 0), ([20, 20], 1), ([50, 10], 1), ([-1], 0), ([101], 0),
               ([10, 200], 1), ([1.5, 2.5], 0), ([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110], 10)):
    field(fid(), f"spec.analysis.stepWeights[{at}]", analysis={"iterations": 0, "stepWeights": ws})
# 10,000 fractional steps: the message is capped at 1 KiB (hostile_test checks every message).
field(fid(), "spec.analysis.stepWeights[0]", analysis={"iterations": 0, "stepWeights": [i + 0.5 for i in range(10000)]})
field(fid(), "spec.analysis.stepWeight", analysis={"iterations": 0, "stepWeight": 0})
field(fid(), "spec.analysis.iterations", analysis={"iterations": -1, "stepWeight": 5})
field(fid(), "spec.analysis.threshold", analysis={"threshold": -3})
field(fid(), "spec.analysis.iterations", analysis={"iterations": 2.5})
field(fid(), "spec.analysis.threshold", analysis={"threshold": 1e12})
for interval in ("500ms", "0s", "5mx", "10m5"):
    field(fid(), "spec.analysis.interval", analysis={"interval": interval})
field(fid(), "spec.analysis.metrics[0].thresholdRange", analysis={"metrics": [{"name": "request-duration"}]})
field(fid(), "spec.analysis.metrics[0].interval", analysis={"metrics": [{"name": "request-success-rate", "interval": "1mx", "thresholdRange": {"min": 99}}]})
field(fid(), "spec.analysis.metrics[0]", analysis={"metrics": [{"name": "latency"}]})
field(fid(), "spec.analysis.metrics[0].thresholdRange", analysis={"metrics": [{"name": "request-duration", "thresholdRange": {"min": 5, "max": 1}}]})


def hook(**h):
    base = {"name": "w", "url": "http://loadtester.demo/"}
    base.update(h)
    return {"webhooks": [base]}


for url in ("loadtester", "ftp://loadtester/", "file:///etc/passwd", "gopher://x/", "http://loadtester:99999/",
            "http://loadtester:0/", "http://loadtester:http/", "http:///gate", "https://[::1/", "http://load tester/",
            "http://loadtester:65536/", "ws://loadtester/", "http://loadtester:-1/"):
    field(fid(), "spec.analysis.webhooks[0].url", analysis=hook(url=url))
for retries in (1e9, 11, 100, -1):
    field(fid(), "spec.analysis.webhooks[0].retries", analysis=hook(retries=retries))
field(fid(), "spec.analysis.webhooks[0].timeout", analysis=hook(timeout="5sx"))
field(fid(), "spec.analysis.webhooks[1].url",
      analysis={"webhooks": [{"name": "ok", "url": "http://x/"}, {"name": "bad", "url": "ftp://x/"}]})
field(fid(), "spec.analysis.sessionAffinity.primaryCookieName", analysis={"sessionAffinity": {"cookieName": "c", "primaryCookieName": "c"}})
for port_name in ("HTTP", "-web", "web-", "a" * 64, "web_1"):
    field(fid(), "spec.service.portName", service={"portName": port_name})
for target_port in ("my_port", "a-very-long-port-name", "1234", "http--x", "-http"):
    field(fid(), "spec.service.targetPort", service={"targetPort": target_port})
for target_port in (0, 70000, -8080):
    field(fid(), "spec.service.targetPort", service={"targetPort": target_port})
field(fid(), "spec.service.gatewayRefs[0].name", service={"gatewayRefs": [{"namespace": "x"}]})
field(fid(), "spec.service.mirror[0].backendRef.port", service={"mirror": [{"backendRef": {"name": "m"}}]})
field(fid(), "spec.service.delegation", service={"delegation": True, "hosts": ["a.example"]})
field(fid(), "spec.progressDeadlineSeconds", spec={"progressDeadlineSeconds": -1})
field(fid(), "spec.autoscalerRef.primaryScalerReplicas",
      spec={"autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "h",
                              "primaryScalerReplicas": {"minReplicas": 5, "maxReplicas": 2}}})
field(fid(), "spec.targetRef", spec={"provider": "knative"})
field(fid(), "spec.service.port", service={"port": 0})
field(fid(), "spec.service.port", service={"port": 70000})
field(fid(), "spec.targetRef.apiVersion",
      spec={"targetRef": {"apiVersion": "", "kind": "Deployment", "name": "podinfo"}})
field(fid(), "spec.ingressRef.name",
      spec={"ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": ""}})

# ---- admission: the CRD schema refuses ---------------------------------------------------------
m = 0


def aid():
    global m
    m += 1
    return f"a{m:03d}"


def bad(mutate):
    c = canary(aid())
    mutate(c)
    return c


def set_path(obj, path, value):
    node = obj
    *head, last = path
    for k in head:
        node = node.setdefault(k, {})
    node[last] = value


for path, value, text in (
        (("spec", "analysis", "interval"), "soon", "interval"),
        (("spec", "analysis", "interval"), "9000h", "interval"),
        (("spec", "analysis", "interval"), 5, "interval"),
        (("spec", "analysis", "threshold"), "two", "threshold"),
        (("spec", "analysis", "stepWeight"), "ten", "stepWeight"),
        (("spec", "analysis", "maxWeight"), True, "maxWeight"),
        (("spec", "analysis", "stepWeights"), "10,20", "stepWeights"),
        (("spec", "analysis", "stepWeights"), ["ten"], "stepWeights"),
        (("spec", "analysis", "webhooks"), {"name": "w"}, "webhooks"),
        (("spec", "analysis", "webhooks"), [{"name": "w", "url": "http://x/", "type": "later"}], "type"),
        (("spec", "analysis", "webhooks"), [{"name": "w", "url": "http://x/", "retries": "many"}], "retries"),
        (("spec", "analysis", "alerts"), [{"name": "a", "severity": "loud", "providerRef": {"name": "p"}}], "severity"),
        (("spec", "analysis", "alerts"), [{"name": "a"}], "providerRef"),
        (("spec", "analysis", "metrics"), ["request-success-rate"], "metrics"),
        (("spec", "service", "port"), "http", "port"),
        (("spec", "service", "trafficDistribution"), "Anywhere", "trafficDistribution"),
        (("spec", "skipAnalysis"), "yes", "skipAnalysis"),
        (("spec", "suspend"), 1, "suspend"),
        (("spec", "revertOnDeletion"), "true", "revertOnDeletion"),
        (("spec", "provider"), "envoy", "provider"),
        (("spec", "provider"), 7, "provider"),
        (("spec", "targetRef", "kind"), "ReplicaSet", "kind"),  # canaryd's CRD admits StatefulSet
        (("spec", "autoscalerRef"), {"apiVersion": "autoscaling/v2", "kind": "VPA", "name": "x"}, "kind"),
        (("spec", "autoscalerRef"), {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler"}, "name"),
        (("spec", "ingressRef"), {"apiVersion": "networking.k8s.io/v1", "kind": "Service", "name": "x"}, "kind"),
        (("spec", "progressDeadlineSeconds"), "soon", "progressDeadlineSeconds"),
        (("spec", "service", "gatewayRefs"), "gw", "gatewayRefs"),
        (("spec", "analysis", "match"), {"headers": {}}, "match"),
        (("spec", "analysis", "sessionAffinity"), "sticky", "sessionAffinity"),
        (("spec", "service", "mirror"), [{"backendRef": {"name": "m", "port": 99999}}], "port"),
        # Required by the schema, so refused before canaryd sees them.
        (("spec", "analysis", "metrics"), [{"interval": "1m"}], "name"),
        (("spec", "analysis", "metrics"), [{"name": "x", "templateRef": {"namespace": "demo"}}], "name"),
        (("spec", "analysis", "metrics"), [{"name": "request-success-rate"}, {"query": "up"}], "name"),
        (("spec", "analysis", "webhooks"), [{"name": "w"}], "url"),
        (("spec", "analysis", "webhooks"), [{"url": "http://x/"}], "name"),
        (("spec", "analysis", "alerts"), [{"providerRef": {"name": "p"}}], "name"),
        (("spec", "analysis", "sessionAffinity"), {"cookieName": "c", "sameSite": "Sometimes"}, "sameSite"),
        (("spec", "analysis", "sessionAffinity"), {"maxAge": 5}, "cookieName"),
        (("spec", "autoscalerRef"), {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "h",
                                     "primaryScalerReplicas": {"minReplicas": 0}}, "minReplicas"),
):
    obj = bad(lambda c: set_path(c, path, value))
    admission(obj["metadata"]["name"], text, obj)

no_spec = canary(aid())
del no_spec["spec"]
admission(no_spec["metadata"]["name"], "spec", no_spec)
no_target = canary(aid())
del no_target["spec"]["targetRef"]["name"]
admission(no_target["metadata"]["name"], "name", no_target)
no_port = canary(aid())
del no_port["spec"]["service"]["port"]
admission(no_port["metadata"]["name"], "port", no_port)


def alert_provider(name, spec):
    return {"apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider",
            "metadata": {"name": name, "namespace": "demo"}, "spec": spec}


def metric_template(name, spec):
    return {"apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
            "metadata": {"name": name, "namespace": "demo"}, "spec": spec}


for spec, text in (({"type": "pagerduty", "address": "http://x/"}, "type"),
                   ({"type": 3}, "type"),
                   ({"type": "slack", "secretRef": {"key": "x"}}, "name"),
                   ({"type": "slack", "address": ["http://x/"]}, "address")):
    name = aid()
    admission(name, text, alert_provider(name, spec))
no_spec_ap = alert_provider(aid(), {})
del no_spec_ap["spec"]
admission(no_spec_ap["metadata"]["name"], "spec", no_spec_ap)
for spec, text in (({"provider": {"type": "graphana", "address": "http://x/"}, "query": "up"}, "type"),
                   ({"provider": "prometheus", "query": "up"}, "provider"),
                   ({"provider": {"type": "prometheus"}, "query": 5}, "query")):
    name = aid()
    admission(name, text, metric_template(name, spec))
no_spec_mt = metric_template(aid(), {})
del no_spec_mt["spec"]
admission(no_spec_mt["metadata"]["name"], "spec", no_spec_mt)

# ---- ownership: refused, naming the other Canary ------------------------------------------------
r = 0


def rid():
    global r
    r += 1
    return f"r{r:03d}"


name = rid()
add(name, "refused", "controlled by Canary podinfo", [canary(name, target="podinfo-primary", service={"name": name + "-svc"})])
# A second Canary on that same target: refused by the first rule already, naming r001.
name = rid()
add(name, "refused", "already the target of Canary r001",
    [canary(name, target="podinfo-primary", spec={"revertOnDeletion": True}, service={"name": name + "-svc"})])
name = rid()
add(name, "refused", "Canary podinfo", [canary(name, target=name + "-app", service={"name": "podinfo"})], target=name + "-app")
name = rid()
add(name, "refused", "Canary podinfo", [canary(name, target=name + "-app", service={"name": "podinfo-primary"})],
    target=name + "-app")
name = rid()
add(name, "refused", "Canary podinfo", [canary(name, target=name + "-app", service={"name": "podinfo-canary"})],
    target=name + "-app")
for i in range(4):
    name = rid()
    add(name, "refused", "already the target of Canary podinfo",
        [canary(name, target="podinfo", service={"name": f"{name}-svc"}, spec={"revertOnDeletion": i % 2 == 0})])
name = rid()
add(name, "refused", "Canary podinfo", [canary(name, target="podinfo")])
# Two Canaries of one new application: the older (its name sorts first at equal age) drives it.
for i in range(4):
    name = rid()
    first = canary(name + "-first", target=name + "-app")
    add(name, "refused", f"already the target of Canary {name}-first", [first, canary(name + "-second", target=name + "-app")],
        canary_name=name + "-second", target=name + "-app")
name = rid()
first = canary(name + "-first", target=name + "-app")
add(name, "refused", f"already the apex Service of Canary {name}-first",
    [first, canary(name + "-second", target=name + "-other", service={"name": name + "-app"})],
    canary_name=name + "-second", target=name + "-app")

# ---- run time: the Promoted condition says why ----------------------------------------------------
c = 0


def cid():
    global c
    c += 1
    return f"c{c:03d}"


for i in range(8):
    name = cid()
    add(name, "condition", f"deployment {name}-missing.demo get query error",
        [canary(name, target=name + "-missing")])
for kind, api in (("DaemonSet", "apps/v1"), ("Service", "v1")):
    name = cid()
    add(name, "condition", f"{kind.lower()} {name}-app.demo get query error",
        [canary(name, spec={"targetRef": {"apiVersion": api, "kind": kind, "name": name + "-app"}})])
for provider in ("linkerd", "nginx", "contour", "gloo", "traefik"):
    name = cid()
    add(name, "condition", provider, [canary(name, target=name + "-app", spec={"provider": provider})],
        target=name + "-app")

# ---- run time: Warning Events (AlertProviders, MetricTemplates) ------------------------------------
e = 0


def eid():
    global e
    e += 1
    return f"e{e:03d}"


def with_alert(name, provider):
    return canary(name, target=name + "-app",
                  analysis={"alerts": [{"name": "on-call", "severity": "info", "providerRef": {"name": provider}}]})


name = eid()
add(name, "event", f"Alert to AlertProvider {name}-nowhere.demo", [with_alert(name, name + "-nowhere")], target=name + "-app")
for spec in ({"type": "slack", "address": "not a url"},
             {"type": "slack", "address": "ftp://hooks.example/x"},
             {"type": "discord", "address": "http://127.0.0.1:99999/x"},
             {"type": "slack"},
             {"type": "msteams", "address": "http://127.0.0.1:1/hook"},
             {"type": "rocket", "address": "http://127.0.0.1:1/hook", "proxy": "::bad::"},
             {"type": "slack", "secretRef": {"name": "missing-secret"}},
             {"type": "gchat", "address": "https://127.0.0.1:1/hook"}):
    name = eid()
    add(name, "event", f"Alert to AlertProvider {name}-provider.demo",
        [alert_provider(name + "-provider", spec), with_alert(name, name + "-provider")], target=name + "-app")
name = eid()
add(name, "event", f"Alert to AlertProvider {name}-provider.demo",
    [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name + "-secret", "namespace": "demo"},
      "stringData": {"token": "t"}},
     alert_provider(name + "-provider", {"type": "slack", "secretRef": {"name": name + "-secret"}}),
     with_alert(name, name + "-provider")], target=name + "-app")


def with_template(name, template, extra=None):
    m = {"name": "custom", "templateRef": {"name": template}, "thresholdRange": {"max": 1}, "interval": "1m"}
    if extra:
        m.update(extra)
    return canary(name, target=name + "-app", analysis={"metrics": [m]})


name = eid()
add(name, "event", f"Metric template {name}-nowhere.demo", [with_template(name, name + "-nowhere")], target=name + "-app")
for spec in ({"provider": {"type": "datadog", "address": "http://127.0.0.1:1"}, "query": "up"},
             {"provider": {"type": "prometheus", "address": "http://127.0.0.1:1"}, "query": "up"},
             {"provider": {"type": "prometheus", "address": "http://127.0.0.1:1",
                           "secretRef": {"name": "missing-secret"}}, "query": "up"},
             {"provider": {"type": "prometheus", "address": "http://127.0.0.1:1"}, "query": ""},
             {"provider": {"type": "cloudwatch"}, "query": "up"},
             {"provider": {"type": "prometheus", "address": "ftp://127.0.0.1/"}, "query": "up"}):
    name = eid()
    # Every message about a template names it ("Metric template <name>.<ns> ...", "prometheus in
    # metric template <name>.<ns> not available ...").
    add(name, "event", f"{name}-template.demo", [metric_template(name + "-template", spec), with_template(name, name + "-template")],
        target=name + "-app")

json.dump({"cases": cases}, sys.stdout, indent=None, separators=(",", ":"))
sys.stdout.write("\n")
counts = {}
for k in cases:
    counts[k["expect"]["outcome"]] = counts.get(k["expect"]["outcome"], 0) + 1
print(f"{len(cases)} cases: {counts}", file=sys.stderr)
