"""`import_mlflow`: bring an MLflow tracking store (an mlruns folder or a tracking server) into the
portal. `open_reader` picks the reader for a URI; `Importer` writes through the portal's services.

- `source`: the records both readers produce and the reader interface.
- `reader_files`: an mlruns folder (MLflow's FileStore layout).
- `reader_rest`: an http(s) tracking URI (MLflow's REST API).
- `importer`: experiments and runs (params, metric histories, tags, artifacts).
- `registry`: registered models, ONNX versions and aliases.
- `summary`: the tally and the progress hook.
"""

from apps.mlflow_api.importer.importer import Importer
from apps.mlflow_api.importer.reader_files import FileStoreReader, local_path
from apps.mlflow_api.importer.reader_rest import RestReader
from apps.mlflow_api.importer.source import ItemError, MlflowReader, SourceError
from apps.mlflow_api.importer.summary import ImportSummary, Progress


def open_reader(
    uri: str, *, token: str | None = None, username: str | None = None, password: str | None = None
) -> MlflowReader:
    """The reader for `uri`: http(s) -> the REST API; file:// or a path -> an mlruns folder.
    `SourceError` for anything else, or when the store cannot be opened."""
    uri = (uri or "").strip()
    if uri.startswith(("http://", "https://")):
        return RestReader(uri, token=token, username=username, password=password)
    path = local_path(uri)
    if path is None:
        raise SourceError(
            f"Cannot import from {uri!r}: give an mlruns folder (a path or file:// URI) or an http(s) tracking URI."
        )
    return FileStoreReader(path)


__all__ = [
    "FileStoreReader",
    "ImportSummary",
    "Importer",
    "ItemError",
    "MlflowReader",
    "Progress",
    "RestReader",
    "SourceError",
    "open_reader",
]
