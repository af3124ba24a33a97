//! `TemplateStore`: templates by key, created then replaced with a version that counts the puts.

use herald_domain::template::TemplateSpec;
use serde_json::json;

use crate::backends;
use crate::fixtures::{at, template};

fn content(title: &str) -> TemplateSpec {
    serde_json::from_value(json!({ "channels": { "in_app": { "title": title, "body": "Hello {{ user.id }}" } } }))
        .expect("a valid template")
}

#[tokio::test]
async fn a_template_is_created_then_replaced() {
    for b in backends().await {
        let key = template("welcome");
        assert!(b.get_template(&key).await.unwrap().is_none(), "{b}: no template yet");

        let created = b.put_template(&key, &content("Hi"), at(10)).await.unwrap();
        assert_eq!(
            (created.key.as_str(), created.version, created.created_at, created.updated_at),
            ("welcome", 1, at(10), at(10)),
            "{b}: a new template is version 1"
        );
        let replaced = b.put_template(&key, &content("Hello"), at(20)).await.unwrap();
        assert_eq!(
            (replaced.version, replaced.created_at, replaced.updated_at, &replaced.spec),
            (2, at(10), at(20), &content("Hello")),
            "{b}: a replacement counts a version and keeps the creation time"
        );

        let read = b.get_template(&key).await.unwrap().expect("the template");
        assert_eq!((read.version, read.spec), (2, content("Hello")), "{b}: reads see the replacement");
        assert!(b.get_template(&template("other")).await.unwrap().is_none(), "{b}: templates are kept by key");
    }
}
