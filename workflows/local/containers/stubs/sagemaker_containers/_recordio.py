from _stub import missing

_write_recordio = missing("sagemaker_containers._recordio._write_recordio")
