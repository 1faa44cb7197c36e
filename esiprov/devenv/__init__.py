"""Local services for the demo and the tests: etcd, Redis, Heat, emulated switches, esiprov itself.

Set before gRPC loads (this package is imported before any of its modules): the
demo and the tests start services while their own gRPC channels are busy, and
gRPC's fork handlers can abort such a child before it execs. Nothing here runs
gRPC in a forked child. Production keeps gRPC's default (Celery's prefork pool).
"""
import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
