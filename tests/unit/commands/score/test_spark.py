from mlops_lab.commands.score.spark import failure_summary


class JavaFailure(Exception):
    """What py4j raises for an exception in the JVM: the Java exception rides along."""

    def __init__(self, java_exception: str) -> None:
        super().__init__("An error occurred while calling o42.parquet.\n: long Java trace")
        self.java_exception = java_exception


def test_a_spark_failure_is_told_in_its_most_telling_line():
    assert failure_summary(JavaFailure("java.io.IOException: No space left")) == (
        "java.io.IOException: No space left"
    )
    assert failure_summary(RuntimeError("[PATH_NOT_FOUND] Path does not exist\n  more")) == (
        "[PATH_NOT_FOUND] Path does not exist"
    )
    worker = "Python worker failed\nTraceback (most recent call last):\n  ...\nValueError: bad\n"
    assert failure_summary(RuntimeError(worker)) == "ValueError: bad"
    assert failure_summary(RuntimeError("")) == "RuntimeError"
