"""Dev aid, not part of the test suite: check that the official openai and anthropic Python
SDKs parse every answer of the fake upstream (src/bin/fake_upstream.rs), plain and streamed.

    cargo build --bin fake-upstream
    python3 tests/sdk/check_fake.py            # starts target/debug/fake-upstream itself
    python3 tests/sdk/check_fake.py http://127.0.0.1:PORT   # or uses a running one
"""

import os
import subprocess
import sys

import anthropic
import openai

FAKE = {"prompt_tokens": 20, "completion_tokens": 7, "cached_tokens": 4,
        "reasoning_tokens": 2, "cache_read": 5, "cache_write": 3, "chunks": 4}


def start_fake():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([os.path.join(root, "target/debug/fake-upstream"), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), line
    return proc, line.removeprefix("listening on ")


def check(base):
    oa = openai.OpenAI(api_key="sk-fake", base_url=base + "/v1", max_retries=0)
    an = anthropic.Anthropic(api_key="sk-ant-fake", base_url=base, max_retries=0)
    extra = {"fake": FAKE}

    r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                   extra_body=extra)
    print("chat plain:", r.id, repr(r.choices[0].message.content), r.usage.prompt_tokens,
          r.usage.completion_tokens, r.usage.prompt_tokens_details.cached_tokens,
          r.usage.completion_tokens_details.reasoning_tokens)

    text, usage, ids = "", None, set()
    for chunk in oa.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "hi"}],
                                            extra_body=extra):
        ids.add(chunk.id)
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    print("chat stream:", ids, repr(text), usage.prompt_tokens, usage.completion_tokens,
          usage.prompt_tokens_details.cached_tokens, usage.completion_tokens_details.reasoning_tokens)

    usage = "none"
    for chunk in oa.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": "hi"}]):
        if chunk.usage:
            usage = chunk.usage
    print("chat stream without include_usage, usage:", usage)

    e = oa.embeddings.create(model="text-embedding-3-small", input="hi", extra_body=extra)
    print("embeddings (SDK default base64):", e.data[0].embedding[:3], e.usage.prompt_tokens, e.usage.total_tokens)
    e = oa.embeddings.create(model="text-embedding-3-small", input="hi", encoding_format="float")
    print("embeddings float:", e.data[0].embedding[:3], e.usage.prompt_tokens)

    r = oa.responses.create(model="gpt-4o-mini", input="hi", extra_body=extra)
    u = r.usage
    print("responses plain:", r.id, repr(r.output_text), u.input_tokens, u.output_tokens,
          u.input_tokens_details.cached_tokens, u.output_tokens_details.reasoning_tokens)

    types, text, final = [], "", None
    for ev in oa.responses.create(model="gpt-4o-mini", input="hi", stream=True, extra_body=extra):
        types.append(type(ev).__name__)
        if ev.type == "response.output_text.delta":
            text += ev.delta
        if ev.type == "response.completed":
            final = ev.response
    u = final.usage
    print("responses stream:", final.id, repr(text), u.input_tokens, u.output_tokens,
          u.input_tokens_details.cached_tokens, u.output_tokens_details.reasoning_tokens)
    print("  events:", types)

    with oa.responses.stream(model="gpt-4o-mini", input="hi", extra_body=extra) as s:
        final = s.get_final_response()
    print("responses.stream helper:", repr(final.output_text), final.usage.output_tokens)

    m = an.messages.create(model="claude-3-5-haiku-latest", max_tokens=10,
                           messages=[{"role": "user", "content": "hi"}], extra_body=extra)
    u = m.usage
    print("messages plain:", m.id, repr(m.content[0].text), m.stop_reason, u.input_tokens,
          u.cache_read_input_tokens, u.cache_creation_input_tokens, u.output_tokens)

    types, out = [], None
    for ev in an.messages.create(model="claude-3-5-haiku-latest", max_tokens=10, stream=True,
                                 messages=[{"role": "user", "content": "hi"}], extra_body=extra):
        types.append(ev.type)
        if ev.type == "message_start":
            start = ev.message.usage
        if ev.type == "message_delta":
            out = ev.usage.output_tokens
    print("messages stream: start usage", start.input_tokens, start.cache_read_input_tokens,
          start.cache_creation_input_tokens, start.output_tokens, "| final output_tokens", out)
    print("  events:", types)

    with an.messages.stream(model="claude-3-5-haiku-latest", max_tokens=10,
                            messages=[{"role": "user", "content": "hi"}], extra_body=extra) as s:
        final = s.get_final_message()
    print("messages.stream helper:", repr(final.content[0].text), final.usage.input_tokens,
          final.usage.output_tokens)

    models = oa.models.list()
    print("models:", [m.id for m in models.data])

    try:
        oa.chat.completions.create(model="gpt-4o-mini", messages=[], extra_body={"fake": {"status": 429}})
    except openai.RateLimitError as err:
        print("openai 429:", err.status_code, err.response.headers.get("retry-after"), err.body)
    try:
        an.messages.create(model="claude-3-5-haiku-latest", max_tokens=1, messages=[],
                           extra_body={"fake": {"status": 529}})
    except anthropic.APIStatusError as err:
        print("anthropic 529:", type(err).__name__, err.status_code, err.body)
    try:
        for _ in oa.chat.completions.create(model="gpt-4o-mini", stream=True, messages=[],
                                            extra_body={"fake": {"die_after_chunks": 1}}):
            pass
        print("die_after_chunks: stream ended WITHOUT error (unexpected)")
    except Exception as err:  # the SDK surfaces the transport error
        print("die_after_chunks:", type(err).__name__, err)


def check_strict(base):
    """The SDKs build models without validating; validate the raw bodies strictly as well."""
    import json

    import urllib.request

    import pydantic
    from anthropic.types import Message, RawMessageStreamEvent
    from openai.types import CreateEmbeddingResponse
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
    from openai.types.responses import Response, ResponseStreamEvent

    def raw(path, body):
        req = urllib.request.Request(base + path, data=json.dumps(body | {"fake": FAKE}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as answer:
            return answer.read().decode()

    def post(path, body):
        return json.loads(raw(path, body))

    def events(path, body):
        return [json.loads(line[6:]) for line in raw(path, body).splitlines()
                if line.startswith("data: ") and line != "data: [DONE]"]

    chat = {"model": "gpt-4o-mini", "messages": []}
    ChatCompletion.model_validate(post("/v1/chat/completions", chat))
    for e in events("/v1/chat/completions", chat | {"stream": True, "stream_options": {"include_usage": True}}):
        ChatCompletionChunk.model_validate(e)
    CreateEmbeddingResponse.model_validate(post("/v1/embeddings", {"model": "m", "input": "hi"}))
    Response.model_validate(post("/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}))
    adapter = pydantic.TypeAdapter(ResponseStreamEvent)
    for e in events("/v1/responses", {"model": "gpt-4o-mini", "input": "hi", "stream": True}):
        adapter.validate_python(e)
    Message.model_validate(post("/v1/messages", {"model": "claude-x"}))
    adapter = pydantic.TypeAdapter(RawMessageStreamEvent)
    for e in events("/v1/messages", {"model": "claude-x", "stream": True}):
        if e["type"] != "ping":
            adapter.validate_python(e)
    print("strict pydantic validation of every body and stream event: ok")


if __name__ == "__main__":
    proc = None
    if len(sys.argv) > 1:
        base = sys.argv[1].rstrip("/")
    else:
        proc, base = start_fake()
    try:
        check(base)
        check_strict(base)
    finally:
        if proc:
            proc.terminate()
