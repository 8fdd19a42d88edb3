"""tenantry's gateway driven by the official `openai` and `anthropic` Python SDKs, the way an
application uses it: only `base_url` and `api_key` change. Run by tests/api/sdk.rs, which then
checks the usage tenantry recorded for every call.

    python3 tests/sdk/gateway_sdk.py URL SERVICE_KEY VIEWER_KEY SCENARIO_JSON
    python3 tests/sdk/gateway_sdk.py --plain URL KEY

SCENARIO_JSON maps each call's name to the `"fake"` object that steers the fake provider
(src/bin/fake_upstream.rs): its token counts. The script checks what the SDK itself sees (the
usage in each answer, no usage chunk on a stream that did not ask for one, the SDK's own
exception classes and the contract's codes on errors) and prints one JSON object on stdout:
the response id the SDK saw for each metered call and the `X-Tenantry-Cost-Usd` it got. Any
failed check exits non-zero.
"""

import json
import sys

import anthropic
import openai

MESSAGES = [{"role": "user", "content": "hi"}]


def fail(what):
    raise SystemExit(f"gateway_sdk.py: {what}")


def expect(cond, what):
    if not cond:
        fail(what)


def error_object(err):
    """The provider-format error object of an SDK exception's body, whichever shape it has."""
    body = err.body
    expect(isinstance(body, dict), f"{type(err).__name__} body is not JSON: {body!r}")
    inner = body.get("error", body)
    expect(isinstance(inner, dict), f"no error object in {body!r}")
    return inner


def openai_calls(oa, fake, ids, costs):
    f = fake["chat"]
    raw = oa.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES,
                                                       extra_body={"fake": f})
    # tenantry's own headers on a relayed answer: the call's cost and the limit status.
    costs["chat"] = raw.headers.get("x-tenantry-cost-usd")
    expect(raw.headers.get("x-usage-limit-status") == "ok", f"headers: {raw.headers}")
    r = raw.parse()
    u = r.usage
    expect((u.prompt_tokens, u.completion_tokens, u.prompt_tokens_details.cached_tokens,
            u.completion_tokens_details.reasoning_tokens)
           == (f["prompt_tokens"], f["completion_tokens"], f["cached_tokens"],
               f["reasoning_tokens"]), f"chat usage as the SDK saw it: {u}")
    expect(r.choices[0].message.content, "chat answer has text")
    ids["chat"] = r.id

    # A stream that did not ask for usage: tenantry asks upstream for it (to meter the call)
    # and must withhold the usage chunk from this client.
    f = fake["chat_stream"]
    seen, text = set(), ""
    for chunk in oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                            extra_body={"fake": f}):
        seen.add(chunk.id)
        expect(chunk.usage is None, f"a usage chunk reached a client that did not ask: {chunk}")
        expect(chunk.choices, f"a chunk without choices (the usage chunk?): {chunk}")
        text += chunk.choices[0].delta.content or ""
    expect(len(seen) == 1 and text, f"chat stream ids {seen}, text {text!r}")
    ids["chat_stream"] = seen.pop()

    # A client that reads one chunk and hangs up: tenantry reads on to meter the whole call.
    f = fake["chat_abandoned"]
    stream = oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                        extra_body={"fake": f | {"chunks": 20,
                                                                 "chunk_delay_ms": 25}})
    ids["chat_abandoned"] = next(iter(stream)).id
    stream.close()

    f = fake["chat_stream_usage"]
    seen, usage = set(), None
    for chunk in oa.chat.completions.create(model="o4-mini", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True},
                                            extra_body={"fake": f}):
        seen.add(chunk.id)
        if chunk.usage:
            usage = chunk.usage
    expect(usage is not None, "the client that asked for usage got no usage chunk")
    expect((usage.prompt_tokens, usage.completion_tokens,
            usage.prompt_tokens_details.cached_tokens,
            usage.completion_tokens_details.reasoning_tokens)
           == (f["prompt_tokens"], f["completion_tokens"], f["cached_tokens"],
               f["reasoning_tokens"]), f"chat stream usage: {usage}")
    expect(len(seen) == 1, f"chat stream ids {seen}")
    ids["chat_stream_usage"] = seen.pop()

    # The SDK asks for base64 by default and decodes it: the body must come back unchanged.
    f = fake["embeddings"]
    e = oa.embeddings.create(model="text-embedding-3-small", input="hi", extra_body={"fake": f})
    expect(e.usage.prompt_tokens == f["prompt_tokens"], f"embeddings usage: {e.usage}")
    expect(len(e.data) == 1 and len(e.data[0].embedding) > 0, "an embedding came back")

    f = fake["responses"]
    r = oa.responses.create(model="gpt-4.1-mini", input="hi", extra_body={"fake": f})
    u = r.usage
    expect((u.input_tokens, u.output_tokens, u.input_tokens_details.cached_tokens,
            u.output_tokens_details.reasoning_tokens)
           == (f["prompt_tokens"], f["completion_tokens"], f["cached_tokens"],
               f["reasoning_tokens"]), f"responses usage: {u}")
    expect(r.output_text, "responses answer has text")
    ids["responses"] = r.id

    f = fake["responses_stream"]
    final, text = None, ""
    for ev in oa.responses.create(model="o3-mini", input="hi", stream=True,
                                  extra_body={"fake": f}):
        if ev.type == "response.output_text.delta":
            text += ev.delta
        if ev.type == "response.completed":
            final = ev.response
    expect(final is not None and text, f"responses stream: final {final}, text {text!r}")
    expect(final.usage.output_tokens == f["completion_tokens"], f"usage {final.usage}")
    ids["responses_stream"] = final.id

    # Google through its OpenAI-compatible endpoint, named by prefix, with the label headers an
    # application sets per call.
    f = fake["gemini"]
    r = oa.chat.completions.create(model="google/gemini-1.5-flash-8b", messages=MESSAGES,
                                   extra_body={"fake": f},
                                   extra_headers={"X-Tenantry-User": "alice",
                                                  "X-Tenantry-Agent": "sdk-agent"})
    expect(r.usage.prompt_tokens == f["prompt_tokens"], f"gemini usage: {r.usage}")
    ids["gemini"] = r.id

    models = oa.models.list()
    listed = {m.id: m.owned_by for m in models.data}
    expect(listed.get("gpt-4o-mini") == "openai", f"models: {listed}")
    expect(listed.get("claude-3-5-haiku") == "anthropic", f"models: {listed}")
    expect(listed.get("text-embedding-3-small") == "openai", f"models: {listed}")


def anthropic_calls(an, fake, ids):
    f = fake["messages"]
    m = an.messages.create(model="claude-3-5-haiku-latest", max_tokens=100, messages=MESSAGES,
                           extra_body={"fake": f})
    u = m.usage
    expect((u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens,
            u.output_tokens)
           == (f["prompt_tokens"], f["cache_read"], f["cache_write"], f["completion_tokens"]),
           f"messages usage: {u}")
    expect(m.content[0].text, "messages answer has text")
    ids["messages"] = m.id

    f = fake["messages_stream"]
    with an.messages.stream(model="claude-haiku-4-5-20251001", max_tokens=100,
                            messages=MESSAGES, extra_body={"fake": f}) as s:
        final = s.get_final_message()
    expect(final.usage.output_tokens == f["completion_tokens"], f"stream usage {final.usage}")
    expect(final.content[0].text, "messages stream has text")
    ids["messages_stream"] = final.id

    # The SDK's other way to send a key, `Authorization: Bearer`, as with an auth token.
    f = fake["messages_bearer"]
    bearer = anthropic.Anthropic(base_url=str(an.base_url), auth_token=an.api_key, api_key=None,
                                 max_retries=0)
    raw = bearer.messages.with_raw_response.create(model="claude-3-5-haiku-latest",
                                                   max_tokens=100, messages=MESSAGES,
                                                   extra_body={"fake": f})
    sent = raw.http_request.headers
    expect("x-api-key" not in sent and sent.get("authorization", "").startswith("Bearer tk_"),
           f"the SDK sent {dict(sent)}")
    m = raw.parse()
    expect(m.usage.output_tokens == f["completion_tokens"], f"bearer usage: {m.usage}")
    ids["messages_bearer"] = m.id

    # The provider breaks off after message_start: the SDK must see an error, not an end.
    try:
        for _ in an.messages.create(model="claude-3-5-haiku-latest", max_tokens=100, stream=True,
                                    messages=MESSAGES, extra_body={"fake": fake["messages_cut"]}):
            pass
        fail("a stream the provider broke off ended cleanly for the client")
    except Exception:  # the SDK's transport error (its HTTP library's own class)
        pass

    f = fake["messages_stream_raw"]
    msg_id, out = None, None
    for ev in an.messages.create(model="claude-3-7-sonnet-latest", max_tokens=100, stream=True,
                                 messages=MESSAGES, extra_body={"fake": f}):
        if ev.type == "message_start":
            msg_id = ev.message.id
        if ev.type == "message_delta":
            out = ev.usage.output_tokens
    expect(msg_id and out == f["completion_tokens"], f"raw stream: id {msg_id}, output {out}")
    ids["messages_stream_raw"] = msg_id


def error_calls(url, viewer_key, oa, an):
    """Errors through the SDKs: tenantry's own carry the contract's codes; the provider's are
    relayed as they came. None of them is metered."""
    viewer = openai.OpenAI(base_url=f"{url}/v1", api_key=viewer_key, max_retries=0)
    try:
        viewer.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        fail("a viewer key called the gateway")
    except openai.PermissionDeniedError as err:
        expect(err.status_code == 403, f"viewer: {err.status_code}")
        expect(error_object(err).get("code") == "forbidden", f"viewer: {err.body}")

    viewer = anthropic.Anthropic(base_url=url, api_key=viewer_key, max_retries=0)
    try:
        viewer.messages.create(model="claude-3-5-haiku-latest", max_tokens=10, messages=MESSAGES)
        fail("a viewer key called /v1/messages")
    except anthropic.PermissionDeniedError as err:
        expect(err.status_code == 403, f"anthropic viewer: {err.status_code}")
        expect(err.body.get("type") == "error", f"anthropic viewer: {err.body}")
        expect(error_object(err).get("type") == "forbidden", f"anthropic viewer: {err.body}")

    try:
        oa.chat.completions.create(model="no-such-model", messages=MESSAGES)
        fail("an unknown model was called")
    except openai.NotFoundError as err:
        expect(error_object(err).get("code") == "model_not_found", f"unknown: {err.body}")

    try:
        oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                   extra_body={"fake": {"status": 429}})
        fail("the upstream's 429 did not reach the SDK")
    except openai.RateLimitError as err:
        # The provider's own error, relayed unchanged (its code, its Retry-After).
        expect(error_object(err).get("code") == "rate_limit_exceeded", f"429: {err.body}")
        expect(err.response.headers.get("retry-after") == "1", f"429: {err.response.headers}")

    try:
        an.messages.create(model="gpt-4o-mini", max_tokens=10, messages=MESSAGES)
        fail("/v1/messages took an OpenAI model")
    except anthropic.BadRequestError as err:
        expect(err.body.get("type") == "error", f"messages with gpt: {err.body}")


def plain(url, key):
    """`--plain URL KEY`: one chat completion and one message, the fake's default counts."""
    oa = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    an = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    chat = oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    msg = an.messages.create(model="claude-3-5-haiku-latest", max_tokens=100, messages=MESSAGES)
    print(json.dumps({"ids": {"chat": chat.id, "messages": msg.id}}))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--plain":
        return plain(sys.argv[2].rstrip("/"), sys.argv[3])
    if len(sys.argv) != 5:
        fail("usage: gateway_sdk.py URL SERVICE_KEY VIEWER_KEY SCENARIO_JSON")
    url, key, viewer_key, scenario = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4]
    fake = json.loads(scenario)
    # The one-line change an application makes: tenantry's URL and a tenant key.
    oa = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    an = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    ids, costs = {}, {}
    openai_calls(oa, fake, ids, costs)
    anthropic_calls(an, fake, ids)
    error_calls(url, viewer_key, oa, an)
    print(json.dumps({"ids": ids, "costs": costs, "openai": openai.__version__,
                      "anthropic": anthropic.__version__}))


if __name__ == "__main__":
    main()
