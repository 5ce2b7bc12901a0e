use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A local HTTP server on a port it holds from the start; it answers each request with
/// `answer(request text)` and keeps the requests. `None` never answers.
async fn server(
    answer: impl Fn(&str) -> Option<(u16, String)> + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (log, answer) = (log.clone(), answer.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                log.lock().unwrap().push(text.clone());
                let Some((status, body)) = answer(&text) else {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (base, seen)
}

fn request(url: String, json_path: &str) -> WebRequest {
    WebRequest {
        method: WebMethod::Get,
        url,
        headers: Vec::new(),
        body: None,
        json_path: json_path.into(),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn a_get_sends_its_headers_and_picks_the_value_at_the_json_path() {
    let (base, seen) = server(|_| {
        Some((
            200,
            r#"{"data": {"errorRate": 0.02, "ok": true, "state": "green"}}"#.into(),
        ))
    })
    .await;
    let client = WebClient::new();
    let mut r = request(format!("{base}/api/checks?service=web"), "$.data.errorRate");
    r.headers = vec![("Authorization".into(), "Bearer tok-123".into())];
    assert_eq!(client.measure(&r).await, Ok(QueryResult::Number(0.02)));
    let sent = seen.lock().unwrap()[0].clone();
    assert!(
        sent.starts_with("GET /api/checks?service=web HTTP/1.1"),
        "{sent}"
    );
    assert!(
        sent.contains("authorization: Bearer tok-123")
            || sent.contains("Authorization: Bearer tok-123"),
        "{sent}"
    );
    r.json_path = "{$.data.ok}".into();
    assert_eq!(client.measure(&r).await, Ok(QueryResult::Bool(true)));
    r.json_path = "$['data']['state']".into();
    assert_eq!(
        client.measure(&r).await,
        Ok(QueryResult::Text("green".into()))
    );
}

#[tokio::test]
async fn a_post_sends_its_body_as_json() {
    let (base, seen) = server(|req| {
        let body = req
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        Some((200, json_answer(value["service"].as_str() == Some("web"))))
    })
    .await;
    let mut r = request(format!("{base}/check"), "$.passed");
    r.method = WebMethod::Post;
    r.body = Some(r#"{"service": "web"}"#.into());
    assert_eq!(
        WebClient::new().measure(&r).await,
        Ok(QueryResult::Bool(true))
    );
    let sent = seen.lock().unwrap()[0].to_ascii_lowercase();
    assert!(sent.starts_with("post /check"), "{sent}");
    assert!(sent.contains("content-type: application/json"), "{sent}");
}

fn json_answer(passed: bool) -> String {
    format!(r#"{{"passed": {passed}}}"#)
}

#[tokio::test]
async fn errors_name_the_url_and_status_never_a_header() {
    let (base, _) = server(|req| {
        if req.starts_with("GET /slow") {
            None
        } else if req.starts_with("GET /big") {
            Some((
                200,
                format!(r#"{{"x": "{}"}}"#, "a".repeat(MAX_WEB_RESPONSE_BYTES)),
            ))
        } else {
            Some((
                503,
                "<html>\n  <body>down for maintenance</body>\n</html>".into(),
            ))
        }
    })
    .await;
    let client = WebClient::new();
    let mut r = request(format!("{base}/status"), "$.x");
    r.headers = vec![("X-Api-Key".into(), "key-456".into())];
    let down = client.measure(&r).await.unwrap_err();
    assert_eq!(
        down,
        format!("{base}/status answered 503: <html> <body>down for maintenance</body> </html>")
    );
    let mut slow = request(format!("{base}/slow"), "$.x");
    slow.timeout = Duration::from_millis(300);
    slow.headers = r.headers.clone();
    let late = client.measure(&slow).await.unwrap_err();
    assert!(late.contains("did not answer within 300ms"), "{late}");
    let mut big = request(format!("{base}/big"), "$.x");
    big.headers = r.headers.clone();
    let huge = client.measure(&big).await.unwrap_err();
    assert!(huge.contains("reading the answer"), "{huge}");
    for e in [&down, &late, &huge] {
        assert!(!e.contains("key-456"), "{e}");
    }
    let refused = {
        // Bound and never listening: connecting is refused, and no one else takes the port.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let err = client
            .measure(&request(format!("http://{addr}/x"), "$.x"))
            .await
            .unwrap_err();
        drop(socket);
        err
    };
    assert!(refused.contains("unreachable"), "{refused}");
}

#[test]
fn answers_become_what_conditions_see() {
    let ok = |body: &str, path: &str| interpret("u", 200, body.as_bytes(), path);
    assert_eq!(
        ok(r#"{"a": [1, 2.5]}"#, "$.a"),
        Ok(QueryResult::Numbers(vec![1.0, 2.5]))
    );
    assert_eq!(ok(r#"{"a": []}"#, "$.a"), Ok(QueryResult::Empty));
    assert_eq!(ok(r#"{"a": null}"#, "$.a"), Ok(QueryResult::Empty));
    assert_eq!(
        ok(r#"{"a": {"b": [{"c": 3}]}}"#, "$.a.b[0].c"),
        Ok(QueryResult::Number(3.0))
    );
    assert_eq!(ok("7", "$"), Ok(QueryResult::Number(7.0)));
    assert!(
        ok(r#"{"a": {"b": 1}}"#, "$.a")
            .unwrap_err()
            .contains("selects an object")
    );
    assert!(
        ok(r#"{"a": [1, "x"]}"#, "$.a")
            .unwrap_err()
            .contains("not all numbers")
    );
    assert!(
        ok(r#"{"a": 1}"#, "$.b")
            .unwrap_err()
            .contains("names no field")
    );
    assert!(
        ok(r#"{"a": [1]}"#, "$.a[*]")
            .unwrap_err()
            .contains("not supported")
    );
    assert!(
        ok(r#"{"a": 1}"#, "a")
            .unwrap_err()
            .contains("must start with $")
    );
    assert!(
        ok("not json", "$")
            .unwrap_err()
            .contains("no JSON document")
    );
    let long = format!(r#"{{"a": "{}"}}"#, "x".repeat(MAX_TEXT_CHARS + 1));
    assert!(ok(&long, "$.a").unwrap_err().contains("longer than"));
}
