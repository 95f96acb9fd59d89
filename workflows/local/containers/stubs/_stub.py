"""Shared helper of the stand-in modules (see README.md)."""


class NotInReferenceEnv(RuntimeError):
    pass


def missing(name):
    def call(*args, **kwargs):
        raise NotInReferenceEnv(f"{name} is a stand-in in the XGBoost reference environment: this code path "
                                "(Pipe mode, parquet, recordio-protobuf, Dask or the debugger) is not emulated")
    return call


class Placeholder:
    def __init__(self, *args, **kwargs):
        missing(type(self).__name__)()
