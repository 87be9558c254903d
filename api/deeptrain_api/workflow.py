"""Workflow: an inference graph over trained models that can be served and can index a dataset (DESIGN section 3)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from . import catalog, rules
from .common import (
    API_VERSION,
    MESSAGE_MAX_LENGTH,
    ApiModel,
    Condition,
    LocalObjectReference,
    ObjectMeta,
    ResourceRequirements,
    StatusModel,
    Timestamp,
)
from .fields import DatasetFormat, ObjectName, Uri, VideoFrameRate

KIND = "Workflow"
PLURAL = "workflows"
MAX_NODES = 32
MAX_INPUTS = 16

Phase = Literal["Pending", "Ready", "Failed"]
NodeId = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")]


def _unique(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("must not repeat a value")
    return values


def _inputs_listed_earlier() -> list[rules.Rule]:
    """Inputs must name nodes listed before: the graph is acyclic and evaluates in list order.

    CEL has no indexed comprehension both evaluators share, so a literal index range bounded by
    maxItems stands in for it.
    """
    indices = "[" + ", ".join(str(i) for i in range(MAX_NODES)) + "]"
    known = "self.exists(m, m.id == x)"
    return [
        {
            "rule": f"self.all(n, !has(n.inputs) || n.inputs.all(x, {known}))",
            "message": "spec.nodes[].inputs names a node id that is not in spec.nodes; fix the id or add that node",
        },
        {
            "rule": f"{indices}.all(i, i >= size(self) || !has(self[i].inputs) || self[i].inputs.all(x, "
                    f"!{known} || {indices}.exists(j, j < i && self[j].id == x)))",
            "message": "spec.nodes[].inputs must name nodes listed before it; list the nodes in dependency order",
        },
    ]


class ImageCropParams(ApiModel):
    """Parameters of the image-crop builtin: one crop per detected box."""

    margin: float | None = Field(default=None, gt=0, le=10,
                                 description="Scale of each box before cropping; 1 = the box itself.")


class NodeModel(ApiModel):
    """The model a node runs: a trained job's model, a model directory, or a builtin step."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": [
        rules.exactly_one(("deepTrainingJob", "uri", "builtin"), "spec.nodes[].model"),
        {"rule": "!has(self.params) || has(self.builtin)",
         "message": "spec.nodes[].model.params: only builtin steps take params; remove params or use a builtin"},
    ]}}

    deepTrainingJob: ObjectName | None = Field(default=None, description="A DeepTrainingJob in this namespace.")
    uri: Uri | None = Field(default=None, description="A model directory (model.safetensors + model.json).")
    builtin: Literal["image-crop"] | None = Field(default=None, description="A builtin step.")
    params: ImageCropParams | None = Field(default=None, description="Parameters of the builtin step.")

    @model_validator(mode="after")
    def _exactly_one(self) -> NodeModel:
        if sum(value is not None for value in (self.deepTrainingJob, self.uri, self.builtin)) != 1:
            raise ValueError("give exactly one of deepTrainingJob, uri, builtin")
        if self.params is not None and self.builtin is None:
            raise ValueError("only builtin steps take params")
        return self


class WorkflowNode(ApiModel):
    """One step of the graph."""

    id: NodeId = Field(description="Unique id of the node (a DNS label).")
    model: NodeModel
    inputs: Annotated[list[NodeId], AfterValidator(_unique)] | None = Field(
        default=None, max_length=MAX_INPUTS, json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Ids of earlier nodes whose outputs feed this one; none: the graph's input.")


class ServeAuth(ApiModel):
    """Bearer-token authentication of the serving API: every call but probes and metrics needs a token."""

    secretRef: LocalObjectReference = Field(
        description="Secret in the workflow's namespace holding the accepted tokens.")
    key: str = Field(default="tokens", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
                     description="Key of the Secret whose value lists the accepted tokens, separated by "
                                 "whitespace or commas (several, to rotate without downtime).")


class Serve(ApiModel):
    """An HTTP inference service for the graph."""

    replicas: int = Field(default=1, ge=0, le=1000)
    resources: ResourceRequirements | None = None
    auth: ServeAuth | None = Field(default=None, description="Ask callers for a bearer token from this Secret; "
                                                             "without it the service answers anyone who reaches it.")


class IndexDataset(ApiModel):
    """The dataset to embed."""

    uri: Uri
    format: DatasetFormat
    videoFrameRate: VideoFrameRate = catalog.DEFAULT_VIDEO_FRAME_RATE


class IndexConnection(ApiModel):
    """Where the milvus store is: a Secret with the keys `uri` (and optionally `token`, `database`)."""

    secretRef: LocalObjectReference = Field(description="A Secret in this namespace with the key `uri` (http://HOST:19530), "
                                                        "and `token` and `database` when the Milvus needs them.")


class Index(ApiModel):
    """Embed a dataset with the graph and serve nearest-neighbour search over it."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "!has(self.store) || self.store != 'milvus' || has(self.connection)",
         "message": "spec.index.connection: the milvus store needs connection.secretRef naming a Secret with its uri"},
        {"rule": "!has(self.structure) || self.structure == 'auto' || !has(self.store) || self.store == 'embedded'",
         "message": "spec.index.structure: applies to the embedded store only; remove it for milvus"},
    ]}}

    dataset: IndexDataset
    metric: Literal["cosine", "euclidean"] = "cosine"
    store: Literal["embedded", "milvus"] = Field(
        default="embedded", description="embedded: FAISS files beside the models, memory-mapped by every serving "
                                        "replica; milvus: a Milvus collection per model generation.")
    structure: Literal["auto", "exact", "hnsw", "ivfpq"] = Field(
        default="auto", description="Embedded store only: exact search, an HNSW graph, or IVF-PQ with exact "
                                    "re-ranking; auto picks by size (exact below 50,000 rows, IVF-PQ from 20 million).")
    parallelism: int = Field(default=1, ge=1, le=1000,
                             description="Indexing pods, each embedding a disjoint shard of the dataset.")
    clusters: int = Field(default=16, ge=0, le=10000,
                          description="k of the k-means clustering stored per item (0: none).")
    connection: IndexConnection | None = Field(default=None, description="Required for the milvus store.")

    @model_validator(mode="after")
    def _store_settings(self) -> Index:
        if self.store == "milvus" and self.connection is None:
            raise ValueError("the milvus store needs connection.secretRef naming a Secret with its uri")
        if self.store == "milvus" and self.structure != "auto":
            raise ValueError("structure applies to the embedded store only; remove it for milvus")
        return self


class WorkflowSpec(ApiModel):
    """The graph, listed in dependency order, and what to do with it."""

    default: bool = Field(default=False, description="The namespace's default workflow: it indexes inputs.")
    nodes: list[WorkflowNode] = Field(min_length=1, max_length=MAX_NODES, json_schema_extra={
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
        "x-kubernetes-validations": _inputs_listed_earlier()})
    serve: Serve | None = None
    index: Index | None = None

    @model_validator(mode="after")
    def _graph_is_ordered(self) -> WorkflowSpec:
        seen: set[str] = set()
        for node in self.nodes:
            if node.id in seen:
                raise ValueError(f"node id {node.id!r} is repeated; node ids must be unique")
            for name in node.inputs or ():
                if name not in seen:
                    raise ValueError(f"node {node.id!r} input {name!r} must name a node listed before it")
            seen.add(node.id)
        return self


class WorkflowNodeStatus(StatusModel):
    """The model version a node is pinned to."""

    id: str = Field(max_length=63)
    deepTrainingJob: str | None = Field(default=None, max_length=253)
    modelUri: str | None = Field(default=None, max_length=2048)
    version: str | None = Field(default=None, max_length=64)
    ready: bool = False


class IndexStatus(StatusModel):
    """The search index built from spec.index.dataset."""

    size: int | None = Field(default=None, ge=0)
    uri: str | None = Field(default=None, max_length=2048, description="The index folder, or milvus://COLLECTION.")
    version: str | None = Field(default=None, max_length=64)
    retired: str | None = Field(default=None, max_length=2048, description="The collection the current one replaced: "
                                                                           "dropped once the current one serves.")


class WorkflowStatus(StatusModel):
    """Observed state, written by the operator."""

    observedGeneration: int | None = Field(default=None, ge=0)
    phase: Phase | None = None
    conditions: list[Condition] | None = Field(default=None, max_length=32, json_schema_extra={
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})
    nodes: list[WorkflowNodeStatus] | None = Field(default=None, max_length=MAX_NODES, json_schema_extra={
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]})
    endpoint: str | None = Field(default=None, max_length=2048)
    index: IndexStatus | None = None
    updatedAt: Timestamp | None = None
    message: str | None = Field(default=None, max_length=MESSAGE_MAX_LENGTH)


class Workflow(ApiModel):
    """Trained models wired into an inference graph, optionally served and indexing a dataset."""

    apiVersion: Literal["deeptrain.dev/v1alpha1"] = API_VERSION
    kind: Literal["Workflow"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: WorkflowSpec
    status: WorkflowStatus | None = None
