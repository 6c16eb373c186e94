"""The gRPC client of gateway/tests/grpc.rs.

Usage: client.py STUB_DIR TARGET AUTHORITY CALLS_JSON [CA_FILE]
Makes each call of CALLS_JSON (a list of {"rpc": "unary"|"count", "request": {...},
"metadata": [[k, v], ...], "timeout": seconds or null}) on one channel to TARGET with
:authority AUTHORITY (TLS with CA_FILE as the trusted root when given, else h2c), and prints
one JSON list: per call its status code name, details, the replies' messages and metadata, and
the initial and trailing metadata.
"""

import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
import echo_pb2  # noqa: E402
import echo_pb2_grpc  # noqa: E402


def pairs(metadata):
    return [[k, v if isinstance(v, str) else v.hex()] for k, v in (metadata or ())]


def reply(r):
    return {"message": r.message, "metadata": dict(r.metadata)}


def call(stub, spec):
    metadata = [tuple(p) for p in spec.get("metadata", [])]
    timeout = spec.get("timeout")
    out = {"code": "OK", "details": "", "replies": [], "initial": [], "trailing": []}
    try:
        if spec["rpc"] == "unary":
            resp, c = stub.Unary.with_call(
                echo_pb2.EchoRequest(**spec.get("request", {})),
                metadata=metadata,
                timeout=timeout,
            )
            out["replies"].append(reply(resp))
        else:
            c = stub.Count(
                echo_pb2.CountRequest(**spec.get("request", {})),
                metadata=metadata,
                timeout=timeout,
            )
            for r in c:
                out["replies"].append(reply(r))
        out["initial"] = pairs(c.initial_metadata())
        out["trailing"] = pairs(c.trailing_metadata())
    except grpc.RpcError as e:
        out["code"] = e.code().name
        out["details"] = e.details() or ""
        out["initial"] = pairs(e.initial_metadata())
        out["trailing"] = pairs(e.trailing_metadata())
    return out


def main():
    _, _, target, authority, calls = sys.argv[:5]
    options = [("grpc.default_authority", authority)]
    if len(sys.argv) > 5:
        with open(sys.argv[5], "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        options.append(("grpc.ssl_target_name_override", authority))
        channel = grpc.secure_channel(target, creds, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    stub = echo_pb2_grpc.EchoStub(channel)
    print(json.dumps([call(stub, spec) for spec in json.loads(calls)]))


if __name__ == "__main__":
    main()
