"""The OpenAPI 3 description the service returns at /openapi.json, limits and refusals included."""

from __future__ import annotations

import base64
import functools
import io
from typing import Any

from PIL import Image, ImageDraw

from ..data.video import DEFAULT_FRAME_RATE, MAX_FRAME_RATE
from .inputs import MAX_INPUTS
from .limits import HELP, ServeLimits, env_name

OPENAPI_VERSION = "3.0.3"

_BOX = {"type": "object", "description": "Normalised to the input image: fractions of its height and width.",
        "properties": {side: {"type": "number", "minimum": 0, "maximum": 1}
                       for side in ("top_row", "left_col", "bottom_row", "right_col")}}
_IMAGE_REF = {"type": "object", "description": "Exactly one of base64 (the encoded file) or uri (a location the "
                                               "server was allowed to read with --allow-uri-prefix).",
              "properties": {"base64": {"type": "string", "format": "byte"}, "uri": {"type": "string"}}}
_VIDEO_REF = {"type": "object", "description": "A video (MP4, MKV, WebM, AVI, MOV): exactly one of base64 or uri, "
                                               "as for images; its frames are sampled at frameRate per second.",
              "properties": {"base64": {"type": "string", "format": "byte"}, "uri": {"type": "string"},
                             "frameRate": {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                                           "maximum": MAX_FRAME_RATE, "default": DEFAULT_FRAME_RATE}}}
_NODES = {"type": "object", "description": "Node id -> one entry per item the node consumed: regions (detector), "
                                           "region + cropBox (image-crop), embedding (embedder), or the model's prediction.",
          "additionalProperties": {"type": "array", "items": {"type": "object"}}}
_ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {"message": {"type": "string"}}}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@functools.cache
def example_image() -> str:
    """A small real PNG (base64) for the examples, so that trying them out reaches the models."""
    image = Image.new("RGB", (48, 40), (30, 60, 90))
    ImageDraw.Draw(image).rectangle((10, 8, 34, 30), fill=(220, 200, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _errors(limits: ServeLimits, *codes: str) -> dict[str, Any]:
    reasons = {"400": "The request is malformed (not JSON, nested deeper than "
                      f"{limits.max_json_depth} levels, a missing or wrong field); the message names the field.",
               "401": "No bearer token, or not one this workflow accepts (only when authentication is on).",
               "409": "This workflow serves no index.",
               "413": f"The body is over {limits.max_body_bytes} bytes, an image over {limits.max_image_pixels} "
                      f"pixels, or the request's images over {limits.max_request_pixels} pixels together; the "
                      "message names the limit.",
               "422": "Well-formed, but the content cannot be used: bytes that are not a decodable image, a "
                      "vector with non-finite values or of no length.",
               "503": f"The server is busy ({limits.concurrency} requests running and {limits.queue_depth} "
                      "waiting; the Retry-After header says when to retry), or the models are still loading."}
    responses = {code: _json({"$ref": "#/components/schemas/Error"}, reasons[code]) for code in codes}
    if "503" in responses:
        responses["503"]["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                                       "schema": {"type": "integer", "minimum": 1}}}
    return responses


def _limits_text(limits: ServeLimits) -> str:
    lines = [f"- `{name}` = {value} ({env_name(name)}): {HELP[name]}" for name, value in limits.describe().items()]
    return "\n".join(["Limits of this server (each set by an option or environment variable):", *lines])


def openapi_document(workflow_name: str = "", limits: ServeLimits | None = None,
                     authenticated: bool = False) -> dict[str, Any]:
    limits = limits or ServeLimits()
    title = f"deeptrain workflow {workflow_name}".strip()
    image_example = {"base64": example_image()}
    schemas = {
        "Error": _ERROR,
        "Box": _BOX,
        "ImageRef": {**_IMAGE_REF, "example": image_example},
        "VideoRef": _VIDEO_REF,
        "VideoInfo": {"type": "object", "properties": {
            "width": {"type": "integer"}, "height": {"type": "integer"}, "codec": {"type": "string"},
            "container": {"type": "string"}, "frameRate": {"type": "number", "nullable": True},
            "durationMs": {"type": "integer", "nullable": True}}},
        "VideoFrameOutput": {"type": "object", "description": "One sampled frame of a video input.", "properties": {
            "frameIndex": {"type": "integer", "description": "Position of the frame in the decoded stream, from 0."},
            "timeOffsetMs": {"type": "integer", "description": "Presentation time of the frame, in milliseconds."},
            "nodes": _NODES}},
        "Region": {"type": "object", "properties": {"box": {"$ref": "#/components/schemas/Box"},
                                                    "concept": {"type": "string"}, "score": {"type": "number"}}},
        "Input": {"type": "object", "description": "Exactly one of image, video or text.",
                  "properties": {"image": {"$ref": "#/components/schemas/ImageRef"},
                                 "video": {"$ref": "#/components/schemas/VideoRef"}, "text": {"type": "string"}}},
        "PredictRequest": {"type": "object", "required": ["inputs"], "properties": {"inputs": {
            "type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": {"$ref": "#/components/schemas/Input"}}},
            "example": {"inputs": [{"image": image_example}]}},
        "PredictResponse": {"type": "object", "properties": {
            "outputs": {"type": "array", "items": {"type": "object", "description": "An image or text input has "
                                                   "nodes; a video input has video and frames instead.", "properties": {
                "input": {"type": "string"},
                "nodes": _NODES,
                "video": {"$ref": "#/components/schemas/VideoInfo"},
                "frames": {"type": "array", "items": {"$ref": "#/components/schemas/VideoFrameOutput"}}}}},
            "models": {"type": "object", "description": "Node id -> model version.",
                       "additionalProperties": {"type": "string", "nullable": True}}}},
        "SearchRequest": {"type": "object", "description": "Exactly one of image, video or vector.", "properties": {
            "image": {"$ref": "#/components/schemas/ImageRef"},
            "video": {"$ref": "#/components/schemas/VideoRef"},
            "vector": {"type": "array", "minItems": 1, "items": {"type": "number"},
                       "description": "Finite numbers, as many as the index's dimensions; not all zero for cosine."},
            "k": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 5},
            "metric": {"type": "string", "enum": ["cosine", "euclidean"]}},
            "example": {"image": image_example, "k": 3}},
        "Neighbour": {"type": "object", "properties": {
            "id": {"type": "string"}, "input": {"type": "string"},
            "concepts": {"type": "array", "items": {"type": "string"}},
            "region": {"$ref": "#/components/schemas/Region"},
            "timeOffsetMs": {"type": "integer", "description": "For a video's frame: its time in the video."},
            "frameIndex": {"type": "integer"}, "at": {"type": "string", "description": "The time as 00:12.0."},
            "queryTimeOffsetMs": {"type": "integer", "description": "For a video query: the query frame it is "
                                                                    "nearest to."},
            "distance": {"type": "number"}, "score": {"type": "number", "description": "Cosine similarity."}}},
        "SearchResponse": {"type": "object", "properties": {
            "metric": {"type": "string"}, "k": {"type": "integer"},
            "index": {"type": "object", "properties": {"size": {"type": "integer"}, "version": {"type": "string"}}},
            "results": {"type": "array", "description": "One per query embedding (one per detected region when the "
                                                        "graph embeds crops); a video query has one, merging the "
                                                        "neighbours of all its frames.",
                        "items": {"type": "object", "properties": {
                            "region": {"$ref": "#/components/schemas/Region"},
                            "video": {"$ref": "#/components/schemas/VideoInfo"},
                            "queryFrames": {"type": "integer"},
                            "neighbours": {"type": "array", "items": {"$ref": "#/components/schemas/Neighbour"}}}}}}},
        "ClustersRequest": {"type": "object", "description": "Without k: the clusters stored with the index; with k: "
                                                             "k-means computed now (indexes up to 200,000 rows).",
                            "properties": {
            "k": {"type": "integer", "minimum": 1}, "seed": {"type": "integer", "minimum": 0, "default": 0},
            "cluster": {"type": "integer", "minimum": 0, "description": "Only this cluster."},
            "offset": {"type": "integer", "minimum": 0, "default": 0, "description": "First member of the page."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100,
                      "description": "Members per cluster in the page."}}},
        "ClustersResponse": {"type": "object", "properties": {
            "k": {"type": "integer"}, "seed": {"type": "integer"}, "inertia": {"type": "number"},
            "iterations": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"},
            "clusters": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "integer"}, "size": {"type": "integer"},
                "members": {"type": "array", "items": {"type": "string"}},
                "concepts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "centroid": {"type": "array", "items": {"type": "number"}}}}}}},
    }
    multipart_images = {"type": "object", "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "video": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "Videos (a part named video, or a file name with a video extension), sampled at "
                                 "1 frame per second."},
        "text": {"type": "array", "items": {"type": "string"}}}}
    multipart_search = {"type": "object", "properties": {
        "image": {"type": "string", "format": "binary"}, "video": {"type": "string", "format": "binary"},
        "k": {"type": "integer"}, "metric": {"type": "string"}}}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": "v1",
                 "description": "Run the workflow's graph, search its index and cluster it.\n\n" + _limits_text(limits),
                 "x-deeptrain-limits": limits.describe()},
        "paths": {
            "/v1/predict": {"post": {
                "summary": "Run the graph on images, videos (frame by frame) or texts.", "operationId": "predict",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
                    "multipart/form-data": {"schema": multipart_images}}},
                "responses": {"200": _json({"$ref": "#/components/schemas/PredictResponse"}, "Outputs per input."),
                              **_errors(limits, "400", "401", "413", "422", "503")}}},
            "/v1/search": {"post": {
                "summary": "Nearest indexed items to an image, a video or a vector.", "operationId": "search",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/SearchRequest"}},
                    "multipart/form-data": {"schema": multipart_search}}},
                "responses": {"200": _json({"$ref": "#/components/schemas/SearchResponse"}, "Neighbours, nearest first."),
                              **_errors(limits, "400", "401", "409", "413", "422", "503")}}},
            "/v1/clusters": {"post": {
                "summary": "k-means clusters of the indexed items.", "operationId": "clusters",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ClustersRequest"}}}},
                "responses": {"200": _json({"$ref": "#/components/schemas/ClustersResponse"}, "The clusters."),
                              **_errors(limits, "400", "401", "409", "413", "503")}}},
            "/healthz": {"get": {"summary": "Liveness.", "operationId": "healthz", "security": [], "responses": {
                "200": _json({"type": "object"}, "The process is alive."),
                "500": _json({"type": "object"}, "Loading failed; restart the process.")}}},
            "/readyz": {"get": {"summary": "Readiness: models (and index) loaded.", "operationId": "readyz", "security": [],
                                "responses": {"200": _json({"type": "object"}, "Ready, with the model versions."),
                                              "503": _json({"type": "object"}, "Not ready yet.")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics.", "operationId": "metrics", "security": [], "responses": {
                "200": {"description": "Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document.", "operationId": "openapi", "security": [], "responses": {
                "200": _json({"type": "object"}, "OpenAPI 3 description.")}}},
        },
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "Only when the server has tokens (spec.serve.auth, DEEPTRAIN_SERVE_TOKENS)."}}},
        **({"security": [{"bearer": []}]} if authenticated else {}),
    }
