class ClientError(Exception):
    pass


class UnsupportedFormatError(Exception):
    def __init__(self, content_type, **kwargs):
        self.message = f"Content type {content_type} is not supported by this framework."
        super().__init__(self.message)
