"""The HTTP routes of `dlopt serve`, in TensorFlow Serving's REST shape:

  POST /v1/models/<name>:predict   {"instances": [...]} or {"inputs": ...} -> {"predictions": [...]}
  GET  /v1/models/<name>           the model's status, signature, class names and counts
  GET  /healthz                    200 once the model is loaded

An instance is an array of the model's input shape, {"b64": <an image file, base64>}, a string for
text models, or a row object for tables. Bad input is answered 400 with one line, a body over the
size limit 413; never a 500 for what a client sent.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from .batching import Batcher
from .inputs import BadRequest, Signature, instances_of


def load(run_dir: Path, checkpoint: str = "best"):
    """(model name, the model with its test-time views, signature, answers: raw outputs -> answers)."""
    from .. import tta
    from ..errors import ConfigError
    from ..predict import Answers, image_from_bytes
    from ..runs import RunFolder, read_json_if_any
    from ..saved_models import load_run_model

    config, model, _ = load_run_model(run_dir, checkpoint)
    statistics = read_json_if_any(RunFolder(run_dir).inputs)
    value_max = statistics.get("value_max")
    image_settings = config.data.image if config.data.source == "image_folder" else None
    shape = tuple(model.inputs[0].shape[1:])

    def image_reader(data: bytes):  # decoded and scaled as `dlopt predict` does a file
        try:
            image = image_from_bytes(data, shape, image_settings, '"b64"')
        except ConfigError as exc:
            raise BadRequest(str(exc)) from None
        return image * (value_max / 255.0) if value_max and value_max != 255.0 else image

    signature = Signature(model, table=config.data.table is not None, image_reader=image_reader)
    return config.name, tta.wrap(model, config.data.tta), signature, Answers.of_run(run_dir, config, model)


def make_app(run_dir: Path, checkpoint: str = "best", max_batch: int = 32, max_wait_ms: float = 5.0, max_request_bytes: int = 10 << 20):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    name, model, signature, answers = load(run_dir, checkpoint)

    def run_batch(examples: list) -> list:
        # a direct call: predict() builds an input pipeline per call, 10x the time of a small batch
        return answers(model(signature.batch(examples), training=False))

    batcher = Batcher(run_batch, max_batch, max_wait_ms / 1000.0)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def predict(request):
        if request.path_params["model"] != name:
            return error(404, f"no model '{request.path_params['model']}'; this server serves '{name}'")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_request_bytes:
            return error(413, f"the request is {int(declared):,} bytes; the limit is {max_request_bytes:,} (--max-request-bytes)")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_request_bytes:
                return error(413, f"the request is over {max_request_bytes:,} bytes (--max-request-bytes)")
        try:
            instances = instances_of(json.loads(body or b"null"))
            examples = [signature.example(instance) for instance in instances]
            predictions = await batcher.answer(examples)
        except json.JSONDecodeError as exc:
            return error(400, f"the body is not JSON: {exc.msg} at character {exc.pos}")
        except BadRequest as exc:
            return error(400, str(exc))
        except Exception as exc:  # a fault of the server's, not the request's: still one line, and it goes on
            return error(500, f"the model could not answer: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
        return JSONResponse({"predictions": predictions})

    async def status(request):
        if request.path_params["model"] != name:
            return error(404, f"no model '{request.path_params['model']}'; this server serves '{name}'")
        counts = batcher.counts
        return JSONResponse({
            "model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}],
            "name": name,
            "run": str(run_dir),
            "signature": {"inputs": signature.describe(), "outputs": answers.describe()},
            **({"class_names": answers.class_names} if answers.class_names else {}),
            "counts": {"requests": counts.requests, "examples": counts.examples, "model_calls": counts.model_calls},
        })

    async def health(request):
        return JSONResponse({"status": "ok", "model": name})

    async def not_found(request, exc):
        return error(404, f"no such route: {request.method} {request.url.path}")

    async def not_allowed(request, exc):
        return error(405, f"{request.method} is not allowed on {request.url.path}")

    routes = [
        Route("/v1/models/{model}:predict", predict, methods=["POST"]),
        Route("/v1/models/{model}", status, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_allowed}), name
