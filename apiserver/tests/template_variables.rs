//! A GameServer's variables against its Template at admission: declared names only, each
//! value by its rules (a 422 naming `spec.variables[NAME]`), and variables the Template does
//! not make `userEditable` left alone by users, while whoever may update Templates sets them.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use support::{obj, Api, API, TOKEN};

const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";
const TEAM: &str = "/apis/catalyst.dev/v1alpha1/namespaces/team/gameservers";
const PASSWORD: &str = "a long enough password";

async fn ok(api: &Api, token: &str, method: Method, uri: &str, ct: &str, body: Value) -> Value {
    let (code, body) = api.call_as(token, method, uri, ct, Some(body)).await;
    assert!(code.is_success(), "{uri}: {code} {body}");
    body
}

/// A user bound to `rules` in namespace team; returns the user's access token.
async fn user(api: &Api, name: &str, rules: Value) -> String {
    ok(
        api,
        TOKEN,
        Method::POST,
        &format!("{API}/users"),
        JSON,
        obj("User", name, None, json!({})),
    )
    .await;
    let pw = format!("{API}/users/{name}/password");
    ok(
        api,
        TOKEN,
        Method::POST,
        &pw,
        JSON,
        json!({ "password": PASSWORD }),
    )
    .await;
    let roles = format!("{API}/roles");
    ok(
        api,
        TOKEN,
        Method::POST,
        &roles,
        JSON,
        obj(
            "Role",
            &format!("{name}-role"),
            None,
            json!({ "rules": rules }),
        ),
    )
    .await;
    let binding =
        json!({"roleRef": format!("{name}-role"), "subjects": [{"kind": "User", "name": name}]});
    let bindings = format!("{API}/namespaces/team/rolebindings");
    ok(
        api,
        TOKEN,
        Method::POST,
        &bindings,
        JSON,
        obj("RoleBinding", name, Some("team"), binding),
    )
    .await;
    let login = json!({"username": name, "password": PASSWORD});
    let body = ok(api, "", Method::POST, "/auth/v1/login", JSON, login).await;
    body["accessToken"].as_str().unwrap().to_owned()
}

/// A merge patch of server `a` as `token`.
async fn patch_a(api: &Api, token: &str, variables: Value) -> (StatusCode, Value) {
    let body = json!({"spec": {"variables": variables}});
    api.call_as(
        token,
        Method::PATCH,
        &format!("{TEAM}/a"),
        MERGE,
        Some(body),
    )
    .await
}

/// User `owner`, who may do anything with the GameServers of namespace team.
async fn owner(api: &Api) -> String {
    user(
        api,
        "owner",
        json!([{"resources": ["gameservers"], "verbs": ["*"]}]),
    )
    .await
}

fn server(name: &str, variables: Value) -> Value {
    obj(
        "GameServer",
        name,
        Some("team"),
        json!({"template": "gmod", "variables": variables}),
    )
}

fn causes(body: &Value) -> Vec<String> {
    body["details"]["causes"]
        .as_array()
        .unwrap_or_else(|| panic!("no causes in {body}"))
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap(),
                c["message"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn variables_are_admitted_by_their_templates_rules_and_editability() {
    let api = Api::start().await;
    let template = obj(
        "Template",
        "gmod",
        None,
        json!({"images": [{"name": "source", "image": "busybox"}], "variables": [
            {"name": "MAX_PLAYERS", "default": "32", "rules": "required|integer|max:128"},
            {"name": "SRCDS_APPID", "default": "4020", "rules": "required|string|max:20",
             "userEditable": false},
            {"name": "SRCDS_MAP", "default": "gm_construct", "rules": "required|string|alpha_dash"}]}),
    );
    ok(
        &api,
        TOKEN,
        Method::POST,
        &format!("{API}/templates"),
        JSON,
        template,
    )
    .await;
    let owner = owner(&api).await;

    // a value its rule refuses, and a name the template does not declare: 422 per variable
    let (code, body) = api
        .call_as(
            &owner,
            Method::POST,
            TEAM,
            JSON,
            Some(server(
                "a",
                json!({"MAX_PLAYERS": "500", "SRCDS_MAP": "de dust", "NOPE": "1"}),
            )),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        causes(&body),
        [
            "spec.variables[NOPE]: not a variable of template gmod",
            "spec.variables[MAX_PLAYERS]: must be at most 128",
            "spec.variables[SRCDS_MAP]: may only contain letters, numbers, dashes and underscores"
        ]
    );
    // dry runs are checked alike and nothing is stored
    let (code, _) = api
        .call_as(
            &owner,
            Method::POST,
            &format!("{TEAM}?dryRun=All"),
            JSON,
            Some(server("a", json!({"MAX_PLAYERS": "x"}))),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, _) = api.get(&format!("{TEAM}/a")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // the user may not set the locked variable, neither at creation nor later
    let (code, body) = api
        .call_as(
            &owner,
            Method::POST,
            TEAM,
            JSON,
            Some(server("a", json!({"SRCDS_APPID": "730"}))),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(causes(&body)[0].starts_with("spec.variables[SRCDS_APPID]: may not be changed"));
    ok(
        &api,
        &owner,
        Method::POST,
        TEAM,
        JSON,
        server("a", json!({"MAX_PLAYERS": "64"})),
    )
    .await;
    let (code, body) = patch_a(&api, &owner, json!({"SRCDS_APPID": "730"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // an editable one changes; other changes of the spec do not trip over the locked one
    {
        let (code, body) = patch_a(&api, &owner, json!({"MAX_PLAYERS": "100"})).await;
        assert!(code.is_success(), "{code} {body}");
        body
    };
    let (code, body) = patch_a(&api, &owner, json!({"MAX_PLAYERS": "129"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        causes(&body),
        ["spec.variables[MAX_PLAYERS]: must be at most 128"]
    );

    // the administrator (who may update templates) sets the locked one, still by its rules
    let stored = {
        let (code, body) = patch_a(&api, TOKEN, json!({"SRCDS_APPID": "730"})).await;
        assert!(code.is_success(), "{code} {body}");
        body
    };
    assert_eq!(stored["spec"]["variables"]["SRCDS_APPID"], "730");
    let (code, _) = patch_a(&api, TOKEN, json!({"SRCDS_APPID": "x".repeat(21)})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    // and so does a user granted update on templates
    let operator = user(
        &api,
        "operator",
        json!([{"resources": ["gameservers"], "verbs": ["*"]}]),
    )
    .await;
    let grant = obj(
        "Role",
        "template-editor",
        None,
        json!({"rules": [{"resources": ["templates"], "verbs": ["update"]}]}),
    );
    ok(
        &api,
        TOKEN,
        Method::POST,
        &format!("{API}/roles"),
        JSON,
        grant,
    )
    .await;
    let binding = obj(
        "ClusterRoleBinding",
        "operator-templates",
        None,
        json!({"roleRef": "template-editor", "subjects": [{"kind": "User", "name": "operator"}]}),
    );
    ok(
        &api,
        TOKEN,
        Method::POST,
        &format!("{API}/clusterrolebindings"),
        JSON,
        binding,
    )
    .await;
    // (the grant reaches the authorizer through its watch)
    let patch = json!({"spec": {"variables": {"SRCDS_APPID": "4000"}}});
    let mut last = None;
    for _ in 0..50 {
        let (code, body) = api
            .call_as(
                &operator,
                Method::PATCH,
                &format!("{TEAM}/a"),
                MERGE,
                Some(patch.clone()),
            )
            .await;
        if code.is_success() {
            last = None;
            break;
        }
        last = Some((code, body));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last, None);
}

/// An operator's GitOps tree may name a Template applied later; a user may not (the write could
/// not be checked, and unchanged values are not checked again once the Template exists).
#[tokio::test]
async fn only_operators_may_name_a_template_that_does_not_exist_yet() {
    let api = Api::start().await;
    let s = server("early", json!({"ANYTHING": "x"}));
    let (code, body) = api.post(TEAM, s).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let owner = owner(&api).await;
    let (code, body) = api
        .call_as(
            &owner,
            Method::POST,
            TEAM,
            JSON,
            Some(server("late", json!({}))),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(causes(&body), ["spec.template: no Template named \"gmod\""]);
}
