"""Properties of the grammar on arbitrary input: parse either gives a tree or a one-line MappingError,
and a parsed tree evaluates to a param or a MappingError, never anything else (no crash a template
could put into a worker)."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esiprov.mappings import FORMS, TESTS, Evaluator, Expr, MappingError, Resolved, Subject, parse

BODY = {"id": "p1", "name": "xe-0/0/1", "a": "x", "b": None, "n": 3, "ids": ["d1", "gone", None],
        "peers": [{"id": "d1"}, {"x": 1}], "ese_device_id": "d1", "nested": {"a": {"b": 1}}}
BODIES = {("ese_device", "d1"): {"id": "d1", "hostname": "h", "ese_device_id": "gone"}}
EVALUATOR = Evaluator(lambda t, i: BODIES.get((t, i)), {"t": {"ese_device_id": "ese_device"}})
SUBJECT = Subject("t", BODY, 1, "p1")

# words the grammar gives meaning to, so generated input often gets past the first check
WORDS = st.sampled_from(["P", "C", "V", "F", "M", "O", "A", "+", ":", "&", "ese_device", "ese_device_id",
                         "name", "a", "b", "n", "ids", "peers", "id", "nested", "(", "[", ".*", ""])
GRAMMAR_TEXT = st.lists(WORDS, max_size=8).map("".join)
KEYS = st.sampled_from([*FORMS, *TESTS, "path", "ignore_missing", "then_mapping", "else_mapping",
                        "for_mapping", "type", "id", "other"])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12) | GRAMMAR_TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(KEYS | st.text(max_size=6), inner, max_size=4), max_leaves=25)

# well-formed mappings over the body above, to exercise evaluation of every form (lists without
# min_size: hypothesis cannot stop a recursive strategy inside one that must grow)
FIELDS = st.sampled_from(["name", "a", "b", "n", "ids", "peers", "ese_device_id", "nested", "hostname", "missing"])
SOME_FIELDS = st.tuples(FIELDS, st.lists(FIELDS, max_size=2)).map(lambda f: [f[0], *f[1]])
HOPS = st.lists(st.sampled_from(["ese_device_id", "ids"]) | st.fixed_dictionaries(
    {"type": st.sampled_from(["ese_device", "t"]), "id": st.sampled_from(["ese_device_id", "a"])}), max_size=2)
STRING_FORMS = st.one_of(
    FIELDS.map("P{}".format), st.text(max_size=5).map("C{}".format), st.just("Vauto_filled"),
    st.tuples(SOME_FIELDS, FIELDS).map(lambda hf: "F" + ":".join([*(f"ese_device+{h}" for h in hf[0]), hf[1]])),
    st.tuples(FIELDS, FIELDS).map("Mese_device:{0[0]}:{0[1]}".format),
    st.tuples(FIELDS, SOME_FIELDS).map(lambda f: "O" + ":".join([f[0], *f[1]])))
LEAVES = STRING_FORMS | st.lists(STRING_FORMS, max_size=3).map(lambda p: "A" + "&".join(p or ["C"])) | st.one_of(
    st.builds(lambda v: {"constant": v}, SCALARS),
    st.builds(lambda f, p, i: {"field": f, "path": p, "ignore_missing": i}, FIELDS, HOPS, st.booleans()),
    st.builds(lambda k, p: {"output_key": k, "path": p or ["ese_device_id"]}, FIELDS, HOPS),
    st.builds(lambda n: {"nested": n}, SOME_FIELDS),
    st.builds(lambda f, t, i, k: {"for_field": f, "for_mapping": {"path": [{"type": t, "id": i}], "output_key": k}},
              FIELDS, st.sampled_from(["ese_device", "t"]), st.sampled_from(["", "id", "x"]), FIELDS))
MAPPINGS = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner | st.text(max_size=4), max_size=3).map(lambda items: {"concatenate": items or ["x"]}),
    st.builds(lambda kind, l, r, t, e: {"if_mapping": {kind: [l, r]}, "then_mapping": t, "else_mapping": e},
              st.sampled_from(TESTS), inner, inner | GRAMMAR_TEXT.map("C{}".format), inner, inner)), max_leaves=8)


def parsed_or_error(mapping: object) -> Expr | None:
    """The property itself: a tree, or a MappingError with a one-line message."""
    try:
        return parse(mapping)
    except MappingError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None


@given(st.text())
def test_any_string_parses_or_gives_a_mapping_error(text):
    parsed_or_error(text)


@given(GRAMMAR_TEXT)
def test_grammar_like_strings_parse_or_give_a_mapping_error(text):
    parsed_or_error(text)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(JSON | MAPPINGS)
def test_any_json_parses_or_gives_a_mapping_error(mapping):
    parsed_or_error(mapping)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(MAPPINGS | JSON | GRAMMAR_TEXT)
def test_a_parsed_tree_evaluates_to_a_param_or_a_mapping_error(mapping):
    expr = parsed_or_error(mapping)
    if expr is None:
        return
    try:
        resolved = EVALUATOR(expr, SUBJECT)
    except MappingError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(resolved, Resolved) and resolved.type in ("value", "output_key", "list")
    assert set(resolved.param("p")) == {"param", "type", "value", "resources"}
