"""docs/plugins.md's code runs: its blocks are executed in order, then the classes
they define are registered and driven through the host like any plugin's."""

from __future__ import annotations

import asyncio
import json
import re
import types
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.fixture
def doc_plugin() -> types.ModuleType:
    module = types.ModuleType("plugins_md")
    for block in python_blocks():
        exec(compile(block, str(DOC), "exec"), module.__dict__)
    return module


def test_the_page_has_the_three_kinds_and_its_table_lists_every_capability() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 5
    text = DOC.read_text(encoding="utf-8")
    for member in ("resolve_hyperparameters", "load_adapter", "health", "needs_chat",
                   "needs_evalset_dir", "corpus_level", "score_corpus", "retry_after", "version", "fingerprint", "search"):
        assert f"`{member}" in text, member


def test_the_documented_plugin_works_through_the_host(
    doc_plugin: types.ModuleType, gateway_home: Path, register_plugin: Any, tmp_path: Path,
) -> None:
    from gateway.config import load_config
    from gateway.contracts import Sample
    from gateway.jobs import create_job, run_job
    from gateway.plugins import get_backend_class, get_evaluator_class, get_trainer, plugin_infos
    from gateway.registry import BaseModel, add_base_model, get_version
    from gateway.router import Router
    from gateway.store import Store

    register_plugin(doc_plugin, "docs-example")
    info = next(i for i in plugin_infos() if i.name == "docs-example")
    assert info.status == "loaded", info.reason
    assert get_backend_class("shout") is doc_plugin.ShoutBackend

    # The evaluator, with its options checked.
    cls = get_evaluator_class("starts-with")
    scorer = cls(prefix="dear", ignore_case=True)
    assert scorer.score(Sample("1", [], None, "Dear team")).passed is True
    assert scorer.score_corpus([Sample("1", [], None, "Dear"), Sample("2", [], None, "Hi")]).value == 0.5
    with pytest.raises(Exception, match="unknown option 'prefx'"):
        cls(prefx="x")

    # The retriever, found by name and searched after indexing.
    from gateway.contracts import Passage
    from gateway.plugins import get_retriever_class

    retriever = get_retriever_class("word-overlap")()
    retriever.index([Passage("a#0", "fees are low"), Passage("b#0", "returns take 9 days")],
                    tmp_path / "index")
    assert [h.id for h in retriever.search(["how many days for returns"], 2)[0]] == ["b#0"]

    # The backend, built by the router with the user's settings and a context.
    (gateway_home / "config.toml").write_text('[backends."loud"]\nbackend = "shout"\nsuffix = "!!"\n')
    config = load_config()
    store = Store(config.db_path)
    add_base_model(store, BaseModel(name="loud", source="path", path=str(tmp_path)))

    async def ask() -> str:
        from gateway.contracts import ChatRequest

        router = Router(config, store)
        try:
            target = router.resolve("loud")
            backend = await router.backend_for(target)
            answer = await backend.chat(ChatRequest(target, [{"role": "user", "content": "hi"}]))
            assert (await backend.health())["status"] == "ok"
            return answer.text
        finally:
            await router.close()

    assert asyncio.run(ask()) == "HI!!"

    # The trainer, through the real job lifecycle.
    assert get_trainer("counting")().resolve_hyperparameters({}) == {"epochs": 1}
    data = tmp_path / "train.jsonl"
    row = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    data.write_text("".join(json.dumps(row) + "\n" for _ in range(10)))
    job = create_job(config, store, trainer="counting", base="loud", training_file=data,
                     suffix="counted", hyperparameters={"epochs": 2})
    done = run_job(config, store, job.id)
    assert done.status == "succeeded", done.error
    version = get_version(store, done.model_version_id or "")
    assert (version.remote_id, version.trainer_version) == ("counted-10", "counting 1.0")
    assert version.hyperparameters == {"epochs": 2}
