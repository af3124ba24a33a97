//! Templates: per-channel content blocks with Jinja-style placeholders, locale overrides and a
//! digest block; strict rendering (a missing variable is an error) with HTML escaped in `html`.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use crate::channel::{Channel, Class};
use crate::contact::Locale;
use crate::error::ValidationErrors;
use crate::ids::Category;

/// Content of the in-app inbox item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InAppBlock {
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Where a click leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_url: Option<String>,
}

/// A title and a body (push, web push, webhook, digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TitleBody {
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
}

/// Email content: a subject and at least one of a text and an HTML part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailBlock {
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// HTML part; values are HTML-escaped when rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

/// SMS content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsBlock {
    /// Message text.
    pub body: String,
}

/// The per-channel blocks of a template (or of one locale's override).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelBlocks {
    /// Inbox item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app: Option<InAppBlock>,
    /// Mobile push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<TitleBody>,
    /// Browser push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_push: Option<TitleBody>,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailBlock>,
    /// SMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsBlock>,
    /// Webhook (falls back to the in-app block when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<TitleBody>,
}

impl ChannelBlocks {
    /// The channels with a block of their own.
    pub fn channels(&self) -> Vec<Channel> {
        Channel::ALL.into_iter().filter(|c| self.has(*c)).collect()
    }

    fn has(&self, c: Channel) -> bool {
        match c {
            Channel::InApp => self.in_app.is_some(),
            Channel::Push => self.push.is_some(),
            Channel::WebPush => self.web_push.is_some(),
            Channel::Email => self.email.is_some(),
            Channel::Sms => self.sms.is_some(),
            Channel::Webhook => self.webhook.is_some(),
        }
    }

    /// The named source strings of one channel's block.
    fn fields(&self, c: Channel) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        match c {
            Channel::InApp => {
                if let Some(b) = &self.in_app {
                    out.extend([("title", b.title.as_str()), ("body", b.body.as_str())]);
                    if let Some(u) = &b.action_url {
                        out.push(("action_url", u.as_str()));
                    }
                }
            }
            Channel::Push | Channel::WebPush | Channel::Webhook => {
                let b = match c {
                    Channel::Push => &self.push,
                    Channel::WebPush => &self.web_push,
                    _ => &self.webhook,
                };
                if let Some(b) = b {
                    out.extend([("title", b.title.as_str()), ("body", b.body.as_str())]);
                }
            }
            Channel::Email => {
                if let Some(b) = &self.email {
                    out.push(("subject", b.subject.as_str()));
                    if let Some(t) = &b.text {
                        out.push(("text", t.as_str()));
                    }
                    if let Some(h) = &b.html {
                        out.push(("html", h.as_str()));
                    }
                }
            }
            Channel::Sms => {
                if let Some(b) = &self.sms {
                    out.push(("body", b.body.as_str()));
                }
            }
        }
        out
    }
}

/// A locale's overrides: any block given replaces the default one for that locale.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocaleOverride {
    /// Replacement channel blocks.
    #[serde(default)]
    pub channels: ChannelBlocks,
    /// Replacement digest block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<TitleBody>,
}

/// A template as stored: the body of `PUT /v1/templates/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// Default class of notifications using this template.
    #[serde(default)]
    pub class: Class,
    /// Default preference category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Category>,
    /// Content per channel; the channels listed are the ones this template can use.
    pub channels: ChannelBlocks,
    /// Content of a merged batch (`count`, `items`, `first`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<TitleBody>,
    /// Per-locale overrides keyed by language tag (`fr`, `pt-BR`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub locales: BTreeMap<String, LocaleOverride>,
}

/// Largest single template string accepted.
const MAX_SOURCE: usize = 64 * 1024;

/// What a channel renders to; only the fields of that channel are set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rendered {
    /// Title (in-app, push, web push, webhook, digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Body (in-app, push, web push, SMS, webhook, digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Click target (in-app).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_url: Option<String>,
    /// Subject (email).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Plain text part (email).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// HTML part (email), with values escaped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

impl Rendered {
    fn set(&mut self, field: &str, value: String) {
        let slot = match field {
            "title" => &mut self.title,
            "body" => &mut self.body,
            "action_url" => &mut self.action_url,
            "subject" => &mut self.subject,
            "text" => &mut self.text,
            _ => &mut self.html,
        };
        *slot = Some(value);
    }
}

/// Why a render failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template has no block for the channel.
    #[error("the template has no content for channel {0}")]
    NoBlock(Channel),
    /// A placeholder names a variable the data does not have.
    #[error("missing template variable `{variable}` in {field}")]
    MissingVariable {
        /// The variable's dotted path.
        variable: String,
        /// Where it is used, e.g. `channels.push.title`.
        field: String,
    },
    /// Any other template error (syntax, filter misuse...).
    #[error("cannot render {field}: {message}")]
    Invalid {
        /// Where, e.g. `channels.push.title`.
        field: String,
        /// The engine's explanation.
        message: String,
    },
}

impl RenderError {
    /// The field the error is about.
    pub fn field(&self) -> String {
        match self {
            RenderError::NoBlock(c) => format!("channels.{c}"),
            RenderError::MissingVariable { field, .. } | RenderError::Invalid { field, .. } => field.clone(),
        }
    }
}

fn environment<'a>() -> Environment<'a> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // A template is named after its field (`html`) or its path (`channels.email.html`).
    env.set_auto_escape_callback(|name| {
        if name == "html" || name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None }
    });
    env
}

/// Where a template string is turned into text: compiled on the spot, or looked up among the
/// strings a [`Compiled`] template compiled once.
trait Sources {
    /// Renders `src`, known as `name` (its path) and reported as `field` in errors.
    fn render(&self, name: &str, field: &str, src: &str, ctx: &Value) -> Result<String, RenderError>;
}

/// Compiles each string when it is rendered (previews, one-off checks).
struct OnTheSpot;

impl Sources for OnTheSpot {
    fn render(&self, name: &str, field: &str, src: &str, ctx: &Value) -> Result<String, RenderError> {
        let env = environment();
        let tmpl = env
            .template_from_named_str(name, src)
            .map_err(|e| RenderError::Invalid { field: field.to_owned(), message: e.to_string() })?;
        finish(&tmpl, field, ctx)
    }
}

impl Sources for Environment<'static> {
    fn render(&self, name: &str, field: &str, _src: &str, ctx: &Value) -> Result<String, RenderError> {
        let tmpl = self
            .get_template(name)
            .map_err(|e| RenderError::Invalid { field: field.to_owned(), message: e.to_string() })?;
        finish(&tmpl, field, ctx)
    }
}

/// Renders a compiled string; a missing variable is named.
fn finish(tmpl: &minijinja::Template<'_, '_>, field: &str, ctx: &Value) -> Result<String, RenderError> {
    tmpl.render(ctx).map_err(|e| {
        if e.kind() == ErrorKind::UndefinedError {
            let missing = tmpl
                .undeclared_variables(true)
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .find(|path| !resolves(ctx, path));
            if let Some(variable) = missing {
                return RenderError::MissingVariable { variable, field: field.to_owned() };
            }
        }
        RenderError::Invalid { field: field.to_owned(), message: e.to_string() }
    })
}

fn resolves(ctx: &Value, path: &str) -> bool {
    let mut v = ctx.clone();
    for part in path.split('.') {
        match v.get_attr(part) {
            Ok(next) if !next.is_undefined() => v = next,
            _ => return false,
        }
    }
    true
}

/// Checks one set of blocks: email completeness, sizes and syntax.
fn check_blocks(errs: &mut ValidationErrors, prefix: &str, blocks: &ChannelBlocks, digest: Option<&TitleBody>) {
    let env = environment();
    if let Some(e) = &blocks.email
        && e.text.is_none()
        && e.html.is_none()
    {
        errs.push(format!("{prefix}channels.email"), "needs `text`, `html` or both");
    }
    let mut sources: Vec<(String, &str)> = Vec::new();
    for c in Channel::ALL {
        for (f, src) in blocks.fields(c) {
            sources.push((format!("{prefix}channels.{c}.{f}"), src));
        }
    }
    if let Some(d) = digest {
        sources.push((format!("{prefix}digest.title"), &d.title));
        sources.push((format!("{prefix}digest.body"), &d.body));
    }
    for (field, src) in sources {
        if src.len() > MAX_SOURCE {
            errs.push(field, "must be at most 64 KiB");
        } else if let Err(e) = env.template_from_str(src) {
            errs.push(field, format!("template syntax error: {}", e.detail().unwrap_or("invalid")));
        }
    }
}

impl TemplateSpec {
    /// Checks structure and the syntax of every string.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        if self.channels.channels().is_empty() {
            errs.push("channels", "must have at least one channel block");
        }
        check_blocks(&mut errs, "", &self.channels, self.digest.as_ref());
        for (tag, o) in &self.locales {
            if Locale::parse("", tag).is_err() {
                errs.push(format!("locales.{tag}"), "must be a language tag like fr or pt-BR");
            }
            for c in o.channels.channels() {
                if !self.channels.has(c) {
                    errs.push(format!("locales.{tag}.channels.{c}"), "overrides a channel the template does not have");
                }
            }
            check_blocks(&mut errs, &format!("locales.{tag}."), &o.channels, o.digest.as_ref());
        }
        errs.into_result(())
    }

    /// The channels this template can use. Webhook is available whenever there is a webhook or an
    /// in-app block, since the webhook body falls back to the in-app content.
    pub fn channels(&self) -> Vec<Channel> {
        let mut out = self.channels.channels();
        if !self.channels.has(Channel::Webhook) && self.channels.has(Channel::InApp) {
            out.push(Channel::Webhook);
        }
        out
    }

    /// The locale override to use for `locale`: exact tag, then its language, then none; with its tag.
    fn locale_override(&self, locale: Option<&str>) -> Option<(&str, &LocaleOverride)> {
        let locale = locale?;
        let lower = locale.to_ascii_lowercase();
        let lang = lower.split(['-', '_']).next().unwrap_or_default().to_owned();
        self.locales
            .iter()
            .find(|(k, _)| k.to_ascii_lowercase() == lower)
            .or_else(|| self.locales.iter().find(|(k, _)| k.to_ascii_lowercase() == lang))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Renders `channel` for `locale` with `ctx` (data, `user`, and for digests `count`/`items`/`first`).
    pub fn render(
        &self,
        channel: Channel,
        locale: Option<&str>,
        ctx: &serde_json::Value,
    ) -> Result<Rendered, RenderError> {
        self.render_value(&OnTheSpot, channel, locale, &Value::from(minijinja::value::Serde(ctx)))
    }

    fn render_value(
        &self,
        sources: &dyn Sources,
        channel: Channel,
        locale: Option<&str>,
        ctx: &Value,
    ) -> Result<Rendered, RenderError> {
        let over = self.locale_override(locale);
        // The webhook falls back to the in-app block's title and body.
        let (prefix, blocks, source_channel) = [channel, Channel::InApp]
            .into_iter()
            .take(if channel == Channel::Webhook { 2 } else { 1 })
            .find_map(|c| {
                over.filter(|(_, o)| o.channels.has(c))
                    .map(|(tag, o)| (format!("locales.{tag}."), &o.channels, c))
                    .or(Some(&self.channels).filter(|b| b.has(c)).map(|b| (String::new(), b, c)))
            })
            .ok_or(RenderError::NoBlock(channel))?;
        let mut out = Rendered::default();
        for (field, src) in blocks.fields(source_channel) {
            if source_channel != channel && field == "action_url" {
                continue;
            }
            let path = format!("channels.{source_channel}.{field}");
            out.set(field, sources.render(&format!("{prefix}{path}"), &path, src, ctx)?);
        }
        Ok(out)
    }

    /// Renders the digest block (falls back to a plain "N new notifications" when absent).
    pub fn render_digest(&self, locale: Option<&str>, ctx: &serde_json::Value) -> Result<Rendered, RenderError> {
        self.digest_value(&OnTheSpot, locale, ctx)
    }

    fn digest_value(
        &self,
        sources: &dyn Sources,
        locale: Option<&str>,
        ctx: &serde_json::Value,
    ) -> Result<Rendered, RenderError> {
        let (prefix, block) =
            match self.locale_override(locale).and_then(|(tag, o)| o.digest.as_ref().map(|d| (tag, d))) {
                Some((tag, d)) => (format!("locales.{tag}."), Some(d)),
                None => (String::new(), self.digest.as_ref()),
            };
        let Some(block) = block else {
            let count = ctx.get("count").and_then(|c| c.as_u64()).unwrap_or(0);
            return Ok(Rendered {
                title: Some(format!("{count} new notifications")),
                body: Some(format!("You have {count} new notifications.")),
                ..Rendered::default()
            });
        };
        let ctx = Value::from(minijinja::value::Serde(ctx));
        Ok(Rendered {
            title: Some(sources.render(&format!("{prefix}digest.title"), "digest.title", &block.title, &ctx)?),
            body: Some(sources.render(&format!("{prefix}digest.body"), "digest.body", &block.body, &ctx)?),
            ..Rendered::default()
        })
    }

    /// The accept-time check: renders every block and locale with the producer's `data` and a
    /// stand-in `user` whose every field exists (the real user's fields are only known later).
    pub fn check_renders(&self, data: &serde_json::Map<String, serde_json::Value>) -> Result<(), RenderError> {
        self.check_with(&OnTheSpot, data)
    }

    fn check_with(
        &self,
        sources: &dyn Sources,
        data: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), RenderError> {
        let data = Value::from(minijinja::value::Serde(data));
        let ctx = minijinja::context! { user => Value::from_object(AnyUser), ..data };
        let locales = std::iter::once(None).chain(self.locales.keys().map(|k| Some(k.as_str())));
        for locale in locales {
            for c in self.channels() {
                self.render_value(sources, c, locale, &ctx)?;
            }
        }
        Ok(())
    }
}

/// A template with every string compiled once, for rendering it many times: what a running
/// Herald keeps per template version.
pub struct Compiled {
    spec: TemplateSpec,
    env: Environment<'static>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl Compiled {
    /// Compiles every string of `spec` (its blocks, digest and locales).
    pub fn new(spec: TemplateSpec) -> Result<Compiled, RenderError> {
        let mut env = environment();
        let mut add = |prefix: &str, blocks: &ChannelBlocks, digest: Option<&TitleBody>| -> Result<(), RenderError> {
            let mut sources: Vec<(String, String)> = Vec::new();
            for c in Channel::ALL {
                for (field, src) in blocks.fields(c) {
                    sources.push((format!("{prefix}channels.{c}.{field}"), src.to_owned()));
                }
            }
            if let Some(d) = digest {
                sources.push((format!("{prefix}digest.title"), d.title.clone()));
                sources.push((format!("{prefix}digest.body"), d.body.clone()));
            }
            for (name, src) in sources {
                env.add_template_owned(name.clone(), src)
                    .map_err(|e| RenderError::Invalid { field: name, message: e.to_string() })?;
            }
            Ok(())
        };
        add("", &spec.channels, spec.digest.as_ref())?;
        for (tag, o) in &spec.locales {
            add(&format!("locales.{tag}."), &o.channels, o.digest.as_ref())?;
        }
        Ok(Compiled { spec, env })
    }

    /// The template.
    pub fn spec(&self) -> &TemplateSpec {
        &self.spec
    }

    /// As [`TemplateSpec::render`].
    pub fn render(
        &self,
        channel: Channel,
        locale: Option<&str>,
        ctx: &serde_json::Value,
    ) -> Result<Rendered, RenderError> {
        self.spec.render_value(&self.env, channel, locale, &Value::from(minijinja::value::Serde(ctx)))
    }

    /// As [`TemplateSpec::render_digest`].
    pub fn render_digest(&self, locale: Option<&str>, ctx: &serde_json::Value) -> Result<Rendered, RenderError> {
        self.spec.digest_value(&self.env, locale, ctx)
    }

    /// As [`TemplateSpec::check_renders`].
    pub fn check_renders(&self, data: &serde_json::Map<String, serde_json::Value>) -> Result<(), RenderError> {
        self.spec.check_with(&self.env, data)
    }
}

/// A stand-in user for the accept-time check: every attribute exists (as an empty string), and
/// `user.data` is another such object.
#[derive(Debug)]
struct AnyUser;

impl minijinja::value::Object for AnyUser {
    fn get_value(self: &std::sync::Arc<Self>, key: &Value) -> Option<Value> {
        Some(if key.as_str() == Some("data") { Value::from_object(AnyUser) } else { Value::from("") })
    }
}

/// Builds the render context: the producer's data at the top level plus `user`.
pub fn render_context(data: &serde_json::Map<String, serde_json::Value>, user: serde_json::Value) -> serde_json::Value {
    let mut ctx = data.clone();
    ctx.entry("user").or_insert(user);
    serde_json::Value::Object(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(j: serde_json::Value) -> TemplateSpec {
        let s: TemplateSpec = serde_json::from_value(j).unwrap();
        s.validate().unwrap();
        s
    }

    fn reply() -> TemplateSpec {
        spec(json!({
            "class": "social", "category": "replies",
            "channels": {
                "in_app": {"title": "{{ sender }} replied", "body": "{{ excerpt }}", "action_url": "/t/{{ thread }}"},
                "push": {"title": "{{ sender }}", "body": "{{ excerpt }}"},
                "email": {"subject": "Reply from {{ sender }}", "text": "{{ excerpt }}", "html": "<p>{{ excerpt }}</p>"}
            },
            "digest": {"title": "{{ count }} new replies", "body": "{{ first.sender }} and {{ count - 1 }} more"},
            "locales": {"fr": {"channels": {"push": {"title": "{{ sender }} a répondu", "body": "{{ excerpt }}"}}}}
        }))
    }

    #[test]
    fn renders_and_escapes_only_html() {
        let t = reply();
        let ctx = json!({"sender": "Ana", "excerpt": "<b>hi</b> & bye", "thread": 42});
        let email = t.render(Channel::Email, None, &ctx).unwrap();
        assert_eq!(email.text.as_deref(), Some("<b>hi</b> & bye"));
        assert_eq!(email.html.as_deref(), Some("<p>&lt;b&gt;hi&lt;&#x2f;b&gt; &amp; bye</p>"));
        let inbox = t.render(Channel::InApp, None, &ctx).unwrap();
        assert_eq!(inbox.action_url.as_deref(), Some("/t/42"));
    }

    #[test]
    fn missing_variable_is_an_error_naming_it() {
        let err = reply().render(Channel::Push, None, &json!({"sender": "Ana"})).unwrap_err();
        assert_eq!(
            err,
            RenderError::MissingVariable { variable: "excerpt".into(), field: "channels.push.body".into() }
        );
        let data = json!({"excerpt": "x", "thread": 1});
        let err = reply().check_renders(data.as_object().unwrap()).unwrap_err();
        assert!(matches!(err, RenderError::MissingVariable { ref variable, .. } if variable == "sender"));
        let user_fields =
            spec(json!({"channels": {"in_app": {"title": "Hi {{ user.name }}", "body": "{{ user.data.plan }}"}}}));
        user_fields.check_renders(&serde_json::Map::new()).unwrap();
    }

    #[test]
    fn default_filter_covers_optional_values() {
        let t = spec(json!({"channels": {"in_app": {"title": "Hi {{ user.name | default('there') }}", "body": "x"}}}));
        let r = t.render(Channel::InApp, None, &json!({"user": {"id": "u1"}})).unwrap();
        assert_eq!(r.title.as_deref(), Some("Hi there"));
    }

    #[test]
    fn locale_falls_back_to_language_then_default() {
        let t = reply();
        let ctx = json!({"sender": "Ana", "excerpt": "x"});
        assert_eq!(t.render(Channel::Push, Some("fr-CA"), &ctx).unwrap().title.as_deref(), Some("Ana a répondu"));
        assert_eq!(t.render(Channel::Push, Some("de"), &ctx).unwrap().title.as_deref(), Some("Ana"));
        assert_eq!(t.render(Channel::Push, None, &ctx).unwrap().title.as_deref(), Some("Ana"));
    }

    #[test]
    fn a_compiled_template_renders_exactly_as_the_spec() {
        let t = spec(json!({
            "class": "social",
            "channels": {
                "in_app": {"title": "{{ sender }} replied", "body": "{{ excerpt }}", "action_url": "/t/{{ thread }}"},
                "push": {"title": "{{ sender }}", "body": "{{ excerpt }}"},
                "email": {"subject": "Re: {{ excerpt }}", "text": "{{ excerpt }}", "html": "<p>{{ excerpt }}</p>"}},
            "digest": {"title": "{{ count }} new", "body": "{{ first.sender }}"},
            "locales": {"fr": {"channels": {"push": {"title": "{{ sender }} a répondu", "body": "{{ excerpt }}"}},
                               "digest": {"title": "{{ count }} nouveaux", "body": "{{ first.sender }}"}}}
        }));
        let compiled = Compiled::new(t.clone()).unwrap();
        let ctx = json!({"sender": "Ana", "excerpt": "<b>hi</b> & bye", "thread": 7});
        for locale in [None, Some("fr-CA"), Some("de")] {
            for c in t.channels() {
                assert_eq!(compiled.render(c, locale, &ctx), t.render(c, locale, &ctx), "{c} {locale:?}");
            }
            let digest = json!({"count": 2, "items": [ctx.clone(), ctx.clone()], "first": ctx.clone()});
            assert_eq!(compiled.render_digest(locale, &digest), t.render_digest(locale, &digest), "{locale:?}");
        }
        let html = compiled.render(Channel::Email, None, &ctx).unwrap();
        assert_eq!(
            html.html.as_deref(),
            Some("<p>&lt;b&gt;hi&lt;&#x2f;b&gt; &amp; bye</p>"),
            "values are escaped in html"
        );
        assert_eq!(html.subject.as_deref(), Some("Re: <b>hi</b> & bye"), "and only there");
        let missing = json!({"sender": "Ana"});
        assert_eq!(compiled.render(Channel::Push, None, &missing), t.render(Channel::Push, None, &missing));
        assert!(matches!(compiled.render(Channel::Push, None, &missing), Err(RenderError::MissingVariable { .. })));
        assert_eq!(compiled.check_renders(&serde_json::Map::new()), t.check_renders(&serde_json::Map::new()));
    }

    #[test]
    fn webhook_falls_back_to_in_app() {
        let t = reply();
        assert!(t.channels().contains(&Channel::Webhook));
        let r = t.render(Channel::Webhook, None, &json!({"sender": "Ana", "excerpt": "x", "thread": 1})).unwrap();
        assert_eq!(r.title.as_deref(), Some("Ana replied"));
        assert_eq!(r.action_url, None);
    }

    #[test]
    fn digest_counts() {
        let ctx = json!({"count": 3, "items": [{"sender": "Ana"}, {}, {}], "first": {"sender": "Ana"}});
        let r = reply().render_digest(None, &ctx).unwrap();
        assert_eq!(r.title.as_deref(), Some("3 new replies"));
        assert_eq!(r.body.as_deref(), Some("Ana and 2 more"));
    }

    #[test]
    fn invalid_templates_are_refused() {
        for bad in [
            json!({"channels": {}}),
            json!({"channels": {"push": {"title": "{{ oops", "body": "x"}}}),
            json!({"channels": {"email": {"subject": "s"}}}),
            json!({"channels": {"push": {"title": "t", "body": "b"}}, "locales": {"fr": {"channels": {"sms": {"body": "x"}}}}}),
        ] {
            let s: TemplateSpec = serde_json::from_value(bad.clone()).unwrap();
            assert!(s.validate().is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<TemplateSpec>(json!({"channels": {"fax": {}}})).is_err());
    }
}
