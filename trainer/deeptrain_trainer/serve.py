"""`python -m deeptrain_trainer.serve`: a Workflow's HTTP service (predict, search, clusters), in a pod or here.

    python -m deeptrain_trainer.serve --workflow workflow.yaml --models ./models [--index ./models/index]
    python -m deeptrain_trainer.serve --workflow /etc/deeptrain/workflow.json \\
        --model detect=/mnt/pvc/models/detector --model embed=/mnt/pvc/models/embedder --index /mnt/pvc/...

Model directories: `--model NODE=DIR` pins a node (the operator passes one per model node);
`--models DIR` resolves `deepTrainingJob: NAME` nodes to DIR/NAME for the rest. Every option can
also come from the environment: DEEPTRAIN_WORKFLOW, DEEPTRAIN_MODELS_DIR, DEEPTRAIN_WORKFLOW_MODELS
(a JSON object node -> directory), DEEPTRAIN_INDEX, DEEPTRAIN_SERVE_HOST, DEEPTRAIN_SERVE_PORT, and
the limits (workflow/limits.py: DEEPTRAIN_SERVE_MAX_BODY_BYTES, ...). The server listens on
127.0.0.1 unless told otherwise (the operator passes --host 0.0.0.0 in pods). With
DEEPTRAIN_SERVE_TOKENS set, the API asks for `Authorization: Bearer TOKEN` (workflow/auth.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from deeptrain_api import workflow_contract as contract

from .workflow import limits


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m deeptrain_trainer.serve", description=__doc__.splitlines()[0])
    parser.add_argument(contract.ARG_WORKFLOW, default=env.get("DEEPTRAIN_WORKFLOW"),
                        help="Workflow manifest (YAML or JSON).")
    parser.add_argument("--models", default=env.get("DEEPTRAIN_MODELS_DIR"),
                        help="Directory holding one model directory per deepTrainingJob name.")
    parser.add_argument(contract.ARG_MODEL, action="append", default=[], metavar="NODE=DIR",
                        help="Model directory of one node (repeat per node).")
    parser.add_argument(contract.ARG_INDEX, default=env.get("DEEPTRAIN_INDEX"),
                        help="The index `deeptrain index` wrote (its folder, or milvus://COLLECTION): enables /v1/search and /v1/clusters.")
    parser.add_argument(contract.ARG_HOST, default=env.get("DEEPTRAIN_SERVE_HOST", "127.0.0.1"),
                        help="Address to listen on (default 127.0.0.1; 0.0.0.0 for every interface).")
    parser.add_argument(contract.ARG_PORT, type=int, default=int(env.get("DEEPTRAIN_SERVE_PORT", contract.SERVE_PORT)))
    parser.add_argument(contract.ARG_ALLOW_URI_PREFIX, action="append", default=[], metavar="PREFIX",
                        help="Let requests name images by a URI under this prefix (repeatable); "
                             "by default images must be sent inline.")
    limits.add_arguments(parser, env)
    args = parser.parse_args(argv)
    if not args.workflow:
        parser.error(f"{contract.ARG_WORKFLOW} (or DEEPTRAIN_WORKFLOW) is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args = parse_args(argv)

    from aiohttp import web
    from PIL import Image

    from .workflow.auth import BearerTokens, parse_tokens
    from .workflow.errors import WorkflowError
    from .workflow.manifest import load_workflow
    from .workflow.models import models_dir_resolver, parse_model_map, pinned_resolver
    from .workflow.server import Loaded, create_app

    try:
        workflow = load_workflow(args.workflow)
        pinned = json.loads(os.environ.get("DEEPTRAIN_WORKFLOW_MODELS", "{}")) | parse_model_map(args.model)
        serve_limits = limits.from_arguments(args)
        tokens = None
        if contract.ENV_SERVE_TOKENS in os.environ:
            tokens = BearerTokens(parse_tokens(os.environ[contract.ENV_SERVE_TOKENS]))
    except (WorkflowError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # The server refuses an image over its limit from the header; Pillow's own guard (a warning above
    # MAX_IMAGE_PIXELS, an error above twice that) follows the same limit as a second line.
    Image.MAX_IMAGE_PIXELS = serve_limits.max_image_pixels
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the refusal itself names the limit
    if tokens is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger(__name__).warning("serving on %s without authentication: anyone who reaches this port "
                                            "can use the models (set %s)", args.host, contract.ENV_SERVE_TOKENS)
    resolver = pinned_resolver(pinned, models_dir_resolver(Path(args.models)) if args.models else None)

    def load() -> Loaded:
        from .workflow.graph import WorkflowRunner
        from .workflow.stores import open_index

        runner = WorkflowRunner(workflow, resolver)
        index = open_index(args.index) if args.index else None
        if index is not None:
            index.check_models(runner.model_versions())
        return Loaded(runner, index)

    app = create_app(load, index_expected=bool(args.index), allowed_uri_prefixes=args.allow_uri_prefix,
                     workflow_name=workflow.metadata.name or "", limits=serve_limits, tokens=tokens)
    web.run_app(app, host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
