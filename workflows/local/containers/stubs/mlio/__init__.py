from _stub import Placeholder, missing

SageMakerPipe = DataReaderParams = CsvParams = CsvReader = ParquetRecordReader = RecordIOProtobufReader = \
    InMemoryStore = missing("mlio")
list_files = missing("mlio.list_files")


class DenseTensor(Placeholder):
    pass
