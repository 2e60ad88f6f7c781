//! Swift-shaped responses: status with swob's default HTML body, or a plain-text body.

use hyper::{Response, StatusCode};

use crate::body::{empty, full, Body};

/// swob's reason phrase and explanation for a status.
pub fn reason(status: u16) -> (&'static str, &'static str) {
    match status {
        202 => ("Accepted", "The request is accepted for processing."),
        400 => ("Bad Request", "The server could not comply with the request since it is either malformed or otherwise incorrect."),
        401 => ("Unauthorized", "This server could not verify that you are authorized to access the document you requested."),
        403 => ("Forbidden", "Access was denied to this resource."),
        404 => ("Not Found", "The resource could not be found."),
        405 => ("Method Not Allowed", "The method is not allowed for this resource."),
        406 => ("Not Acceptable", "The resource is not available in a format acceptable to your browser."),
        408 => ("Request Timeout", "The server has waited too long for the request to be sent by the client."),
        409 => ("Conflict", "There was a conflict when trying to complete your request."),
        411 => ("Length Required", "Content-Length header required."),
        412 => ("Precondition Failed", "A precondition for this request was not met."),
        413 => ("Request Entity Too Large", "The body of your request was too large for this server."),
        414 => ("Request URI Too Long", "The request URI was too long for this server."),
        416 => ("Requested Range Not Satisfiable", "The Range requested is not available."),
        422 => ("Unprocessable Entity", "Unable to process the contained instructions"),
        499 => ("Client Disconnect", "The client was disconnected during request."),
        500 => ("Internal Error", "The server has either erred or is incapable of performing the requested operation."),
        501 => ("Not Implemented", "The requested method is not implemented by this server."),
        502 => ("Bad Gateway", "Bad gateway."),
        503 => ("Service Unavailable", "The server is currently unavailable. Please try again at a later time."),
        504 => ("Gateway Timeout", "A timeout has occurred speaking to a backend server."),
        _ => ("", ""),
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A response with swob's default body (`<html><h1>Title</h1><p>…</p></html>`),
/// or none for statuses that carry none.
pub fn status(status: u16) -> Response<Body> {
    let (title, expl) = reason(status);
    let b = Response::builder()
        .status(status_code(status))
        .header("content-type", "text/html; charset=UTF-8");
    if expl.is_empty() || status == 304 || status == 204 {
        return b.body(empty()).unwrap_or_else(|_| Response::new(empty()));
    }
    let text = format!("<html><h1>{title}</h1><p>{expl}</p></html>");
    b.body(full(text))
        .unwrap_or_else(|_| Response::new(empty()))
}

/// A response with swob's default content type (`text/html`) but our own body, as
/// Swift's errors built without an explicit content type.
pub fn html(status: u16, msg: impl Into<String>) -> Response<Body> {
    Response::builder()
        .status(status_code(status))
        .header("content-type", "text/html; charset=UTF-8")
        .body(full(msg.into()))
        .unwrap_or_else(|_| Response::new(empty()))
}

/// A response with a plain-text body, as Swift gives for validation errors.
pub fn text(status: u16, msg: impl Into<String>) -> Response<Body> {
    Response::builder()
        .status(status_code(status))
        .header("content-type", "text/plain")
        .body(full(msg.into()))
        .unwrap_or_else(|_| Response::new(empty()))
}
