"""Stage inputs come from what each config field declares it feeds (config.feeds / feeds_nothing)."""

import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from secondtry import config as C
from secondtry.config import BACKEND_SECTIONS, SECTION, STAGES, Config, feeds_of, load_config, stage_inputs
from secondtry.loop import Context
from secondtry.store import hash_data

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml")) + [ROOT / "src" / "secondtry" / "toy" / "demo.yaml"]


def sections_in(annotation: typing.Any) -> list[type[BaseModel]]:
    """The config sections a field's annotation holds (the backend union holds several)."""
    found = []
    for a in typing.get_args(annotation) or (annotation,):
        if isinstance(a, type) and issubclass(a, BaseModel):
            found.append(a)
        elif typing.get_args(a):
            found += sections_in(a)
    return found


def containers() -> dict[str, list[type[BaseModel]]]:
    """Config's fields that hold sections whose own fields declare their stages."""
    out = {name: sections_in(f.annotation) for name, f in Config.model_fields.items() if feeds_of(f) is None}
    out["backend"] = list(BACKEND_SECTIONS.values())
    return out


def test_every_field_says_which_stages_it_feeds_or_why_none():
    problems = []

    def check(where: str, model: type[BaseModel], inherit: bool) -> None:
        for name, field in model.model_fields.items():
            key, d = f"{where}.{name}", feeds_of(field)
            if d is None:
                problems.append(f"{key}: declares no stages (feeds(...) or feeds_nothing(why))")
                continue
            if not d.stages and not d.why:
                problems.append(f"{key}: feeds nothing and does not say why")
            if (SECTION in d.stages) != inherit:
                problems.append(f"{key}: {SECTION!r} belongs to sections used under several keys, only there")
            if d.key and d.via:
                problems.append(f"{key}: a value reaching a stage through something else has no key there")
            for nested in sections_in(field.annotation):  # a section inside a section: its key's stages
                check(key, nested, inherit=True)

    for name, models in containers().items():
        for model in models:
            check(name, model, inherit=False)
    for name, field in Config.model_fields.items():
        if name not in containers():
            d = feeds_of(field)
            assert d is not None and SECTION not in d.stages, name
            for nested in sections_in(field.annotation):
                check(name, nested, inherit=True)
    assert not problems, "\n".join(problems)


def test_a_field_that_declares_nothing_is_found(monkeypatch):
    field = C.TrainingConfig.model_fields["lr"]
    monkeypatch.setattr(field, "json_schema_extra", None)
    with pytest.raises(ValueError, match="training.lr declares no stages"):
        stage_inputs(load_config(CONFIGS[0]), "train")
    with pytest.raises(ValueError, match="say what the value does"):
        C.feeds_nothing("")
    with pytest.raises(ValueError, match="stages are attempts"):
        C.feeds("training")


def legacy_inputs(cfg: Config) -> dict[str, dict]:
    """The inputs as the loop listed them by hand before the fields declared them (the records of runs made
    then must still match)."""
    b = cfg.backend
    every_backend_key = {
        **{
            k: f.get_default(call_default_factory=True)
            for s in (C.HFBackendConfig, C.OpenAIBackendConfig)
            for k, f in s.model_fields.items()
        },
        **b.model_dump(exclude={"options"} if not getattr(b, "options", None) else set()),
    }
    common = {
        "model": "M",
        "model_cfg": cfg.model.model_dump(exclude={"path"}),
        "verifier": cfg.verifier.model_dump(include={"name", "timeout_s", "options", "judge_cut_text"}),
        "backend": every_backend_key,
        "seed": cfg.seed,
        "chunk": cfg.chunk_size,
        "conditions": cfg.conditions.model_dump(include={"first", "retry_prompt", "history"}),
    }
    c, ev = cfg.conditions, cfg.evaluation
    attempts = {
        **common,
        "problems": "T",
        "sampling": cfg.sampling.model_dump(),
        "round": 1,
        "retry": c.retry,
        "retries": c.retries,
        **({"samples": c.samples} if c.samples > 1 else {}),
        **({"retry_samples": c.retry_samples} if c.retry_samples > 1 else {}),
    }
    evaluation = {
        **common,
        "problems": "E",
        "sampling": cfg.eval_sampling.model_dump(),
        "evaluation": ev.model_dump(
            include={
                "greedy",
                "samples",
                "retry_n",
                "pass_k",
                "retry",
                *(["retry_all"] if ev.retry_all else []),
            }
        ),
    }
    return {
        "attempts": attempts,
        "eval": evaluation,
        "sft": {"attempts": "A", "filter": cfg.filter.model_dump()},
        "train": {
            "sft": "S",
            "start": "M",
            "training": cfg.training.model_dump(),
            "steps": 5,
            "pass": 1,
            "seed": cfg.seed,
        },
    }


def inputs_now(cfg: Config) -> dict[str, dict]:
    """The inputs the loop builds now (Context.inputs; run_round's and train_stage's dicts)."""
    fake = types.SimpleNamespace(cfg=cfg, model_id=lambda m: m, _hashes={"train": "T", "test": "E"})
    return {
        "attempts": Context.inputs(fake, "attempts", "M", 1),
        "eval": Context.inputs(fake, "eval", "M", 1),
        "sft": {"attempts": "A", **stage_inputs(cfg, "sft")},
        "train": {"sft": "S", "start": "M", **stage_inputs(cfg, "train"), "steps": 5, "pass": 1},
    }


OPENAI = ["backend.name=openai", "backend.endpoints=[http://127.0.0.1:8000/v1]", "backend.concurrency=3"]
VARIANTS = [
    [],
    OPENAI,
    OPENAI[:1]
    + [
        "backend.launch=vllm serve {model} --port {port}",
        "backend.lora=true",
        "training.merge=false",
        "backend.launch_env={A: 1}",
    ],
    ["backend.name=a_plugin", "backend.batch_size=5"],
    [
        "conditions.samples=3",
        "conditions.retry_samples=2",
        "evaluation.retry_all=true",
        "evaluation.sampling={temperature: 0.1}",
        "checkpoint.chunk=7",
        "model.system_prompt=hi",
    ],
]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_existing_configs_keep_their_inputs_hashes(path):
    cfg = load_config(path)
    assert {s: hash_data(i) for s, i in inputs_now(cfg).items()} == {
        s: hash_data(i) for s, i in legacy_inputs(cfg).items()
    }


@pytest.mark.parametrize("overrides", VARIANTS, ids=["hf", "openai", "launch", "plugin", "non-defaults"])
def test_backend_variants_keep_their_inputs_hashes(overrides):
    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", overrides)
    assert inputs_now(cfg) == legacy_inputs(cfg)


# A representative change of each section's fields, the stages each must rerun (none: a change that
# must rerun nothing), and a check that this is what the field itself declares.
CHANGES = [
    ("seed=7", {"attempts", "eval", "train"}),
    ("model.system_prompt=Be brief.", {"attempts", "eval"}),
    ("model.dtype=float32", {"attempts", "eval"}),
    ("verifier.timeout_s=3", {"attempts", "eval"}),
    ("verifier.options={extractors: [boxed]}", {"attempts", "eval"}),
    ("verifier.workers=5", set()),
    ("backend.batch_size=3", {"attempts", "eval"}),
    ("backend.engine=off", {"attempts", "eval"}),
    ("sampling.temperature=0.3", {"attempts", "eval"}),
    ("conditions.retries=2", {"attempts"}),
    ("conditions.retry=resample", {"attempts"}),
    ("conditions.samples=2", {"attempts"}),
    ("conditions.retry_prompt=Again.", {"attempts", "eval"}),
    ("filter.max_per_problem=2", {"sft"}),
    ("filter.retry_example=turn", {"sft"}),
    ("training.lr=1e-4", {"train"}),
    ("training.steps_growth=1.2", {"train"}),
    ("training.report_to=[]", set()),
    ("evaluation.samples=8", {"eval"}),
    ("evaluation.retry_all=true", {"eval"}),
    ("evaluation.bootstrap=500", set()),
    ("evaluation.metric=pass1_greedy", set()),
    ("stopping.max_rounds=5", set()),
    ("checkpoint.train_steps=10", set()),
    ("prediction.gain_pp=3", set()),
    ("description=another", set()),
]
OPENAI_CHANGES = [
    ("backend.concurrency=2", {"attempts", "eval"}),
    ("backend.server=sglang", {"attempts", "eval"}),
    ("backend.request_timeout_s=5", set()),
    ("backend.max_retries=1", set()),
    ("backend.api_key_env=KEY", set()),
]


def declared(cfg: Config, key: str) -> set[str]:
    """The stages a dotted key's field declares (a section inside one: the stages of the key holding it)."""
    *path, name = key.split(".")
    model: typing.Any = Config
    stages = None
    for part in path:
        value = getattr(cfg, part) if model is Config else None
        holder = model.model_fields[part]
        model = (
            type(value)
            if value is not None and isinstance(value, BaseModel)
            else sections_in(holder.annotation)[0]
        )
        stages = feeds_of(holder).stages if feeds_of(holder) else stages
    d = feeds_of(model.model_fields[name])
    return set(stages if SECTION in d.stages else d.stages)


@pytest.mark.parametrize(
    "change,stages",
    CHANGES + [(c, s) for c, s in OPENAI_CHANGES],
    ids=[c for c, _ in CHANGES + OPENAI_CHANGES],
)
def test_a_change_reruns_the_stages_its_field_feeds_and_no_other(change, stages):
    base = OPENAI if change in dict(OPENAI_CHANGES) else []
    before = load_config(ROOT / "configs" / "tiny-cpu.yaml", base)
    after = load_config(ROOT / "configs" / "tiny-cpu.yaml", [*base, change])
    changed = {s for s in STAGES if hash_data(inputs_now(before)[s]) != hash_data(inputs_now(after)[s])}
    assert changed == stages
    assert declared(after, change.partition("=")[0]) == stages


def test_every_stage_and_section_has_a_representative_change():
    keys = [c.partition("=")[0] for c, _ in CHANGES + OPENAI_CHANGES]
    assert {s for _, st in CHANGES for s in st} == set(STAGES)
    assert set(containers()) <= {k.split(".")[0] for k in keys}


def test_evaluation_sampling_replaces_sampling_in_the_eval_inputs_only():
    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml", ["evaluation.sampling={temperature: 0.1}"])
    assert stage_inputs(cfg, "eval")["sampling"]["temperature"] == 0.1
    assert stage_inputs(cfg, "attempts")["sampling"] == cfg.sampling.model_dump()
    with pytest.raises(ValueError, match="stages with inputs"):
        stage_inputs(cfg, "report")
