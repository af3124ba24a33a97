//! Loading: layering, strictness, provider sections and defaults.

// figment's Jail fixes the closure's error type to its own, which is large; nothing to shrink here.
#![allow(clippy::result_large_err)]
use super::*;

#[test]
fn file_and_environment_layer_over_defaults() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "herald.toml",
            r#"
            listen = "0.0.0.0:9000"
            [defaults]
            frequency_cap = { max = 5, window_seconds = 600 }
            quiet_hours = { start = "22:00", end = "07:00" }
            [channels.webhook]
            retry_schedule_seconds = [1, 2]
            timeout_seconds = 3
            [channels.email]
            provider = ["dev", "backup"]
            retry_schedule_seconds = [60]
            timeout_seconds = 15
            rate_limit = { per_second = 14 }
            breaker = { failure_threshold = 2 }
            [channels.sms.twilio]
            daily_budget = 250
            [delivery]
            hourly_ceiling = 50
            "#,
        )?;
        jail.set_env("HERALD_LISTEN", "127.0.0.1:0");
        jail.set_env("HERALD_CHANNELS__WEBHOOK__TIMEOUT_SECONDS", "9");
        let c = Config::load(Some(Path::new("herald.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.channels.webhook.retry_schedule_seconds, vec![1, 2]);
        assert_eq!(c.channels.webhook.timeout_seconds, 9);
        assert_eq!(c.defaults.frequency_cap.max, 5);
        assert!(c.preference_defaults().quiet_hours.is_some());
        assert_eq!(c.channels.email.providers(Channel::Email), vec!["dev", "backup"]);
        let settings: std::collections::BTreeMap<_, _> = c.channel_settings().into_iter().collect();
        let email = &settings[&Channel::Email];
        assert_eq!(email.rate_limit.map(|r| r.burst), Some(14));
        assert_eq!(email.breaker.failure_threshold, 2);
        assert_eq!(email.breaker.open_for, jiff::SignedDuration::from_secs(30));
        assert_eq!(settings[&Channel::Sms].daily_budget, Some(250));
        assert_eq!(c.delivery.hourly_ceiling, 50);
        assert_eq!(c.channels.webhook.providers(Channel::Webhook), vec!["webhook"]);
        Ok(())
    });
}

#[test]
fn no_file_gives_the_embedded_defaults() {
    figment::Jail::expect_with(|_| {
        let c = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(c.data_dir, PathBuf::from("./herald-data"));
        assert!(c.database_url.is_empty());
        assert_eq!(c.channels.webhook.retry_schedule_seconds, vec![5, 300, 1800, 7200, 18000]);
        assert_eq!(c.delivery.hourly_ceiling, 100);
        Ok(())
    });
}

#[test]
fn a_configured_provider_section_turns_its_provider_on() {
    figment::Jail::expect_with(|jail| {
        let c = Config::load(None).map_err(|e| e.to_string())?;
        for (channel, section) in c.channel_configs() {
            let expected = if channel == Channel::Webhook { "webhook" } else { "dev" };
            assert_eq!(section.providers(channel), vec![expected], "{channel} with no configuration");
        }
        jail.create_file(
            "herald.toml",
            r#"
            [channels.email]
            from = "Herald <noreply@example.com>"
            smtp = { host = "smtp.example.com", port = 587, tls = "starttls", username = "u", password = "p" }
            [channels.push.fcm]
            service_account_path = "sa.json"
            [channels.web_push]
            subject = "mailto:ops@example.com"
            [channels.sms.twilio]
            account_sid = "AC123"
            auth_token = "t"
            from = "+15550000000"
            "#,
        )?;
        jail.set_env("HERALD_CHANNELS__EMAIL__SMTP__PORT", "2525");
        let c = Config::load(Some(Path::new("herald.toml"))).map_err(|e| e.to_string())?;
        let smtp = c.channels.email.smtp.as_ref().unwrap();
        assert_eq!((smtp.port, smtp.tls), (2525, herald_channels::smtp::SmtpTls::Starttls));
        assert_eq!(c.channels.push.fcm.as_ref().unwrap().endpoint, "https://fcm.googleapis.com");
        assert_eq!(c.channels.email.providers(Channel::Email), vec!["smtp"]);
        assert_eq!(c.channels.push.providers(Channel::Push), vec!["native"]);
        assert_eq!(c.channels.web_push.providers(Channel::WebPush), vec!["web_push"]);
        assert_eq!(c.channels.sms.providers(Channel::Sms), vec!["twilio"]);
        assert_eq!(c.channels.sms.max_segments, Some(DEFAULT_MAX_SEGMENTS));
        jail.set_env("HERALD_CHANNELS__EMAIL__PROVIDER", "dev");
        let c = Config::load(Some(Path::new("herald.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(c.channels.email.providers(Channel::Email), vec!["dev"], "an explicit provider wins");
        Ok(())
    });
}

#[test]
fn a_provider_section_under_the_wrong_channel_is_refused() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("HERALD_CHANNELS__PUSH__SMTP__HOST", "smtp.example.com");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("channels.push.smtp") && e.contains("channels.email"), "{e}");
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.set_env("HERALD_CHANNELS__SMS__MAX_SEGMENTS", "0");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("max_segments"), "{e}");
        Ok(())
    });
}

#[test]
fn private_networks_are_allowed_from_a_list_or_a_comma_separated_variable() {
    figment::Jail::expect_with(|jail| {
        let shown = |c: &Config| c.outbound.allow_private.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert!(Config::load(None).map_err(|e| e.to_string())?.outbound.allow_private.is_empty());
        jail.create_file("herald.toml", "[outbound]\nallow_private = [\"10.0.0.0/8\", \"192.168.1.20\"]\n")?;
        let c = Config::load(Some(Path::new("herald.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(shown(&c), ["10.0.0.0/8", "192.168.1.20/32"]);
        jail.set_env("HERALD_OUTBOUND__ALLOW_PRIVATE", "127.0.0.0/8,::1");
        let c = Config::load(Some(Path::new("herald.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(shown(&c), ["127.0.0.0/8", "::1/128"], "the variable replaces the file's list");
        assert!(c.outbound_policy().permits("127.0.0.1".parse().unwrap()));
        Ok(())
    });
}

#[test]
fn a_bad_network_is_refused_naming_the_key() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("HERALD_OUTBOUND__ALLOW_PRIVATE", "127.0.0.0/8, 10.0.0.0/33");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("HERALD_OUTBOUND__ALLOW_PRIVATE: `10.0.0.0/33` is not a network"), "{e}");
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.create_file("herald.toml", "[outbound]\nallow_private = [\"intranet\"]\n")?;
        let e = Config::load(Some(Path::new("herald.toml"))).unwrap_err().to_string();
        assert!(e.contains("`outbound.allow_private` in herald.toml: `intranet` is not a network"), "{e}");
        Ok(())
    });
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let mut c = Config::default();
    c.channels.email.smtp = Some(SmtpSection { password: "smtp-secret".into(), ..SmtpSection::default() });
    c.channels.sms.twilio = Some(TwilioSection { auth_token: "twilio-secret".into(), ..TwilioSection::default() });
    let shown = format!("{c:?}");
    assert!(!shown.contains("smtp-secret") && !shown.contains("twilio-secret"), "{shown}");
    assert!(shown.contains("api.twilio.com"), "the rest is still shown: {shown}");
}

#[test]
fn shedding_thresholds_must_shed_marketing_first() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("HERALD_OVERLOAD__SHED_MARKETING_AT", "50000");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("marketing is shed first"), "{e}");
        Ok(())
    });
}

#[test]
fn an_unknown_top_level_key_is_refused_naming_it_and_its_file() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("herald.toml", "typo_key = 1\nlisten = \"127.0.0.1:0\"\n")?;
        let e = Config::load(Some(Path::new("herald.toml"))).unwrap_err();
        let ConfigError::Read(problems) = &e else { panic!("expected a read error, got {e}") };
        assert!(
            matches!(&problems[..], [Problem::UnknownKey { path, source: Some(Source::File(file)), suggestion: None, .. }]
                if path == &["typo_key"] && file == Path::new("herald.toml")),
            "{problems:?}"
        );
        let shown = e.to_string();
        assert!(
            shown.contains("unknown key `typo_key` in herald.toml") && shown.contains("listen, data_dir"),
            "{shown}"
        );
        Ok(())
    });
}

#[test]
fn every_misspelt_nested_key_is_reported_with_a_suggestion() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "herald.toml",
            r#"
            [channels.email]
            from = "Herald <noreply@example.com>"
            smpt = { host = "smtp.example.com" }
            [channels.webhook]
            timeout = 5
            breaker = { failure_treshold = 3 }
            [defaults]
            quiet_hours = { start = "22:00", edn = "07:00" }
            "#,
        )?;
        let e = Config::load(Some(Path::new("herald.toml"))).unwrap_err().to_string();
        for expected in [
            "unknown key `channels.email.smpt` in herald.toml; did you mean `smtp`?",
            "unknown key `channels.webhook.timeout` in herald.toml; did you mean `timeout_seconds`?",
            "`channels.webhook.breaker.failure_treshold` in herald.toml; did you mean `failure_threshold`?",
            "`defaults.quiet_hours.edn` in herald.toml; did you mean `end`?",
        ] {
            assert!(e.contains(expected), "{expected:?} missing from: {e}");
        }
        Ok(())
    });
}

#[test]
fn an_unknown_environment_variable_is_refused_with_the_right_name() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("HERALD_CHANNELS__EMAIL__SMPT__HOST", "smtp.example.com");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(
            e.contains("unknown environment variable HERALD_CHANNELS__EMAIL__SMPT__HOST")
                && e.contains("did you mean `smtp` (HERALD_CHANNELS__EMAIL__SMTP__HOST)?"),
            "{e}"
        );
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.set_env("HERALD_CHANNELS_EMAIL_FROM", "x");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("HERALD_CHANNELS_EMAIL_FROM") && e.contains("double underscore"), "{e}");
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.set_env("HERALD_CHANNELS__EMAIL__", "x");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("HERALD_CHANNELS__EMAIL__: names no setting"), "{e}");
        Ok(())
    });
}

#[test]
fn environment_only_variables_are_not_configuration_keys() {
    figment::Jail::expect_with(|jail| {
        for var in ENV_ONLY {
            jail.set_env(var, "set");
        }
        jail.set_env("HERALD_LISTEN", "127.0.0.1:0");
        let c = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(c.listen, "127.0.0.1:0");
        Ok(())
    });
}

#[test]
fn a_bad_value_and_an_unknown_key_are_both_reported() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "herald.toml",
            "[channels.email]\nrate_limit = { burst = 2 }\n[channels.emial]\nfrom = \"x\"\n",
        )?;
        jail.set_env("HERALD_LANES", "many");
        let e = Config::load(Some(Path::new("herald.toml"))).unwrap_err().to_string();
        assert!(e.contains("`channels.email.rate_limit` in herald.toml: missing field `per_second`"), "{e}");
        assert!(e.contains("`channels.emial` in herald.toml; did you mean `email`?"), "{e}");
        assert!(e.contains("HERALD_LANES: invalid type"), "{e}");
        Ok(())
    });
}

#[test]
fn provider_chains_say_where_each_channel_sends() {
    let mut c = Config { data_dir: PathBuf::from("data"), ..Config::default() };
    c.channels.email.smtp = Some(SmtpSection {
        host: "smtp.example.com".into(),
        port: 587,
        tls: herald_channels::smtp::SmtpTls::Starttls,
        ..SmtpSection::default()
    });
    c.channels.email.provider = Some(ProviderList::Many(vec!["smtp".into(), "dev".into()]));
    let shown: Vec<String> = c.provider_chains().iter().map(ToString::to_string).collect();
    assert!(shown.contains(&"channel in_app: inbox".to_owned()), "{shown:?}");
    assert!(shown.contains(&"channel push: dev (writes to data/outbox/push)".to_owned()), "{shown:?}");
    let email = "channel email: smtp (smtp.example.com:587, starttls), then dev (writes to data/outbox/email)";
    assert!(shown.contains(&email.to_owned()), "{shown:?}");
}
