"""Talk to the local graph three ways: seldon-core's SeldonClient, plain HTTP, plain gRPC.

smartreco serve &                      # or: .venv-serving/bin/python -m inference_graph.executor
.venv-serving/bin/python -m inference_graph.client_example --user 42
"""

from __future__ import annotations

import argparse
import json
import urllib.request

import grpc
from google.protobuf import json_format
from seldon_core.proto import prediction_pb2, prediction_pb2_grpc
from seldon_core.seldon_client import SeldonClient


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--user", default="42")
    ap.add_argument("--rest", default="127.0.0.1:8000")
    ap.add_argument("--grpc", default="127.0.0.1:5000")
    args = ap.parse_args()
    request = {"user_id": args.user, "num_recommendations": 10, "context": {"channel": "mobile"}}

    # 1. seldon-core's own client, pointed straight at the executor (no ingress locally)
    sc = SeldonClient(
        gateway="seldon",
        transport="rest",
        gateway_endpoint=args.rest,
        deployment_name="smartreco",
        namespace="default",
    )
    res = sc.predict(json_data=request)
    print("SeldonClient:", res.success, (res.response or {}).get("meta", {}).get("routing"))

    # 2. plain HTTP
    req = urllib.request.Request(
        f"http://{args.rest}/api/v1.0/predictions",
        data=json.dumps({"jsonData": request}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        answer = json.loads(r.read())
    for item in answer["jsonData"]["recommendations"][:3]:
        print(f"HTTP: {item['rank']}. {item['title']} — {item['explanation']}")

    # 3. plain gRPC with Seldon's protos; then feedback along the recorded route
    with grpc.insecure_channel(args.grpc) as ch:
        stub = prediction_pb2_grpc.SeldonStub(ch)
        resp = stub.Predict(
            json_format.ParseDict({"jsonData": request}, prediction_pb2.SeldonMessage()), timeout=10
        )
        print("gRPC routing:", dict(resp.meta.routing))
        fb = json_format.ParseDict(
            {"request": {"jsonData": {"user_id": args.user}}, "reward": 1.0}, prediction_pb2.Feedback()
        )
        fb.response.CopyFrom(resp)
        print(
            "feedback tags:",
            json_format.MessageToDict(stub.SendFeedback(fb, timeout=10)).get("meta", {}).get("tags"),
        )


if __name__ == "__main__":
    main()
