"""The one exception command handlers raise: it becomes an error reply with a code and text."""


class CommandError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
