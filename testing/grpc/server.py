"""The gRPC upstream of gateway/tests/grpc.rs: plain-text HTTP/2 on a loopback port.

Usage: server.py STUB_DIR. Prints "PORT <n>" once serving; runs until stdin closes (the test
holds the pipe, so the server ends with it).
"""

import sys
import time
from concurrent import futures

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
import echo_pb2  # noqa: E402
import echo_pb2_grpc  # noqa: E402


def seen_metadata(context):
    out = {}
    for key, value in context.invocation_metadata():
        if isinstance(value, bytes):
            value = value.hex()
        out[key] = out[key] + "," + value if key in out else value
    # grpc-timeout is no metadata to the application: the deadline it set shows here.
    remaining = context.time_remaining()
    if remaining is not None:
        out["deadline-seconds-left"] = f"{remaining:.1f}"
    return out


class Echo(echo_pb2_grpc.EchoServicer):
    def Unary(self, request, context):
        if request.delay_ms:
            deadline = time.monotonic() + request.delay_ms / 1000
            while time.monotonic() < deadline and context.is_active():
                time.sleep(0.01)
            if not context.is_active():
                return echo_pb2.EchoReply()
        if request.fail_code:
            context.abort(grpc.StatusCode(_code(request.fail_code)), request.message)
        context.set_trailing_metadata((("x-upstream-trailer", "present"),))
        return echo_pb2.EchoReply(message=request.message, metadata=seen_metadata(context))

    def Count(self, request, context):
        for i in range(request.n):
            yield echo_pb2.EchoReply(message=f"item-{i}", metadata=seen_metadata(context))


def _code(number):
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code.value
    raise ValueError(number)


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
