"""One error, three surfaces: the API, the command and the plugin each name an option their own way."""

from sam2unext.errors import OutputError, cli_words, option


def test_error_names_options_in_each_surface_words():
    exc = OutputError(
        f"out.tif exists; pass {option('overwrite')} or set {option('batch_size', 2)}; or {option('vector', False)}"
    )
    assert str(exc) == "out.tif exists; pass overwrite=True or set batch_size=2; or vector=False"
    assert exc.render(cli_words) == "out.tif exists; pass --overwrite or set --batch-size 2; or --no-vector"
    assert exc.options == ["overwrite", "batch_size", "vector"]


def test_plain_message_is_unchanged():
    exc = OutputError("folder x is not writable")
    assert str(exc) == exc.render(cli_words) == "folder x is not writable"
    assert exc.options == []
