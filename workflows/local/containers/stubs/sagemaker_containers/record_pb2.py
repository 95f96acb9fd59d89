from _stub import Placeholder


class Record(Placeholder):
    pass
