"""The Workflow runtime: run an inference graph over trained models, index a dataset with it, serve both.

    workflow = load_workflow("workflow.yaml")                              # .manifest
    runner = WorkflowRunner(workflow, models_dir_resolver(Path("models"))) # .graph, .models (DIR/<job>/model.json)
    outputs = runner.run([GraphInput(name="a.png", image=Image.open("a.png"))])
    index = create_index("embedded", meta, directory=Path("models/index"), workflow_name="w")  # .stores
    update_index(index, runner, read_dataset(uri, "imagefolder"), "embed")  # .indexing: new/changed rows only
    index.commit(); index.search(vector, k=5)                              # .index (the interface)
    store_clusters(index, k=8); index.commit()                             # .kmeans

The two stores behind .index.SearchIndex are .embedded_store (FAISS files, memory-mapped) and
.milvus_store (a Milvus collection per model generation).

`deeptrain workflow run`, `deeptrain index` and `deeptrain search` are thin shells over these;
`python -m deeptrain_trainer.serve` runs the HTTP service (.server), which admits requests through
a bounded queue (.admission), reads and parses bodies within limits (.body, .limits), decodes
inputs (.inputs) and checks bearer tokens (.auth). The pod contract the operator
builds from lives in deeptrain_api.workflow_contract.
"""
