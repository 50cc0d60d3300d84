"""Fake provider servers speaking each real wire protocol on loopback, with fault injection.

They power the tests, the benchmarks and the embedded default. Fidelity is checked by the
providers' official SDKs connecting to them (tests/fakes/test_sdk_*.py).
"""
