//! Where a call goes: the API it speaks (from the path), the provider (from the model's name)
//! and the upstream URL. The gateway never translates between formats; it only picks the door.
use crate::config::Upstreams;
use crate::error::ApiError;

/// The API a gateway path speaks; it decides the request and usage formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    ChatCompletions,
    Embeddings,
    Responses,
    Messages,
}

impl Api {
    /// The path after the provider's base URL, and after `/v1` on ours.
    pub fn path(self) -> &'static str {
        match self {
            Api::ChatCompletions => "chat/completions",
            Api::Embeddings => "embeddings",
            Api::Responses => "responses",
            Api::Messages => "messages",
        }
    }

    /// Our path for it, as metadata and the recent calls name it.
    pub fn route(self) -> &'static str {
        match self {
            Api::ChatCompletions => "/v1/chat/completions",
            Api::Embeddings => "/v1/embeddings",
            Api::Responses => "/v1/responses",
            Api::Messages => "/v1/messages",
        }
    }

    /// Anthropic's native format (errors and usage), or OpenAI's.
    pub fn is_anthropic(self) -> bool {
        self == Api::Messages
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Google,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Google => "google",
        }
    }

    pub const ALL: [Provider; 3] = [Provider::OpenAi, Provider::Anthropic, Provider::Google];

    /// The provider a model name implies by its family prefix.
    fn of_family(model: &str) -> Option<Provider> {
        const OPENAI: [&str; 6] = ["gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-"];
        if OPENAI.iter().any(|p| model.starts_with(p)) {
            Some(Provider::OpenAi)
        } else if model.starts_with("claude-") {
            Some(Provider::Anthropic)
        } else if model.starts_with("gemini-") {
            Some(Provider::Google)
        } else {
            None
        }
    }

    fn base(self, u: &Upstreams) -> &str {
        match self {
            Provider::OpenAi => &u.openai,
            Provider::Anthropic => &u.anthropic,
            Provider::Google => &u.google,
        }
    }
}

/// A call's destination: the provider, the model as the provider and the meter name it (the
/// `provider/` prefix stripped) and the upstream URL.
#[derive(Clone, Debug)]
pub struct Route {
    pub provider: Provider,
    pub model: String,
    /// Whether the client named the provider with a prefix (the body then needs rewriting).
    pub prefixed: bool,
    pub url: String,
}

/// Routes `model` for `api`: a `provider/` prefix names the provider; else the model family
/// does. `/v1/messages` takes only Anthropic models.
pub fn route(api: Api, model: &str, upstreams: &Upstreams) -> Result<Route, ApiError> {
    let named = Provider::ALL.iter().find_map(|p| {
        model
            .strip_prefix(p.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .map(|rest| (*p, rest))
    });
    let (provider, bare, prefixed) = match named {
        Some((p, rest)) => (p, rest, true),
        None => match Provider::of_family(model) {
            Some(p) => (p, model, false),
            None => {
                return Err(ApiError::ModelNotFound(format!(
                    "no provider serves the model `{}`; name one with a prefix (openai/, anthropic/, google/)",
                    crate::error::clip(model)
                )))
            }
        },
    };
    if bare.is_empty() {
        return Err(ApiError::ModelNotFound("the model name is empty".into()));
    }
    if api == Api::Messages && provider != Provider::Anthropic {
        return Err(ApiError::InvalidRequest(format!(
            "/v1/messages takes Anthropic models only, not `{}`",
            crate::error::clip(model)
        )));
    }
    Ok(Route {
        provider,
        model: bare.to_string(),
        prefixed,
        url: format!("{}/{}", provider.base(upstreams), api.path()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(api: Api, model: &str) -> Result<Route, ApiError> {
        route(api, model, &Upstreams::default())
    }

    #[test]
    fn families_and_prefixes_pick_the_provider() {
        for (model, provider, bare) in [
            ("gpt-4o-mini", Provider::OpenAi, "gpt-4o-mini"),
            ("o3-mini", Provider::OpenAi, "o3-mini"),
            (
                "text-embedding-3-small",
                Provider::OpenAi,
                "text-embedding-3-small",
            ),
            (
                "claude-sonnet-4-5",
                Provider::Anthropic,
                "claude-sonnet-4-5",
            ),
            ("gemini-2.5-flash", Provider::Google, "gemini-2.5-flash"),
            ("openai/my-finetune", Provider::OpenAi, "my-finetune"),
            (
                "openai/meta-llama/Llama-3",
                Provider::OpenAi,
                "meta-llama/Llama-3",
            ),
            (
                "anthropic/claude-haiku-4-5",
                Provider::Anthropic,
                "claude-haiku-4-5",
            ),
        ] {
            let got = r(Api::ChatCompletions, model).unwrap();
            assert_eq!(
                (got.provider, got.model.as_str()),
                (provider, bare),
                "{model}"
            );
        }
    }

    #[test]
    fn a_claude_model_on_an_openai_path_goes_to_anthropics_compatible_endpoint() {
        let got = r(Api::ChatCompletions, "claude-haiku-4-5").unwrap();
        assert_eq!(got.url, "https://api.anthropic.com/v1/chat/completions");
    }

    #[test]
    fn unknown_models_are_not_found_and_messages_take_only_anthropic() {
        for m in ["llama3", "mistral/x", "openai/", "", "GPT-4o"] {
            let e = r(Api::ChatCompletions, m).unwrap_err();
            assert_eq!(e.code(), "model_not_found", "{m}");
        }
        assert_eq!(
            r(Api::Messages, "gpt-4o").unwrap_err().code(),
            "invalid_request"
        );
        assert!(r(Api::Messages, "claude-haiku-4-5").is_ok());
    }
}
