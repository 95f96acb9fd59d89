from _stub import missing

read_table = missing("pyarrow.parquet.read_table")
