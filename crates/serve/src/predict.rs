//! Prediction requests: the pictures of a body (image bytes, or a multipart form), decoded, and
//! the answer made of the model's predictions.

use fashion_mixer_data::CLASS_NAMES;
use fashion_mixer_data::picture::decode_image;
use fashion_mixer_run::inference::{Prediction, top_k};
use serde_json::{Value, json};

use crate::multipart;
use crate::predictor::{Image, Predictor};
use crate::request::ApiRequest;
use crate::response::ApiResponse;

/// The most pictures one batch request may hold.
const MAX_BATCH_FILES: usize = 256;

/// The pictures of a prediction request, decoded.
#[derive(Debug)]
pub struct Upload {
    /// Each picture's name (a form part's file name, or "the body").
    pub names: Vec<String>,
    /// The 28x28 inputs.
    pub images: Vec<Image>,
    /// Whether the answer is a batch's (`{predictions: [...]}`).
    pub batch: bool,
    /// The model to ask.
    pub predictor: Predictor,
}

impl Upload {
    /// The answer, given the model's `predictions` for [`Self::images`].
    pub fn answer(&self, predictions: &[Prediction]) -> ApiResponse {
        let mut answers: Vec<Value> = self
            .images
            .iter()
            .zip(predictions)
            .map(|(input, prediction)| prediction_json(input, prediction))
            .collect();
        if !self.batch {
            return ApiResponse::json(200, &answers.remove(0));
        }
        for (answer, name) in answers.iter_mut().zip(&self.names) {
            answer["name"] = json!(name);
        }
        ApiResponse::json(200, &json!({ "predictions": answers }))
    }
}

/// The pictures of a request: each part of a multipart form, or the whole body when it is
/// sent as image bytes.
fn uploads(request: ApiRequest) -> Result<Vec<(String, Vec<u8>)>, ApiResponse> {
    let content_type = request.content_type.to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let boundary = multipart::boundary(request.content_type)
            .ok_or_else(|| ApiResponse::error(400, "multipart/form-data without a boundary"))?;
        return multipart::parts(request.body, &boundary)
            .map_err(|e| ApiResponse::error(400, format!("a malformed multipart form: {e}")));
    }
    let image_like = content_type.is_empty()
        || content_type.starts_with("image/")
        || content_type.starts_with("application/octet-stream")
        // What `curl --data-binary @shirt.png` sends without `-H`: taken when the bytes are a
        // PNG's or a JPEG's.
        || (content_type.starts_with("application/x-www-form-urlencoded")
            && is_png_or_jpeg(request.body));
    if !image_like {
        return Err(ApiResponse::error(
            415,
            format!(
                "content type {content_type} is not an image: send the picture's bytes \
                 (image/png, image/jpeg, application/octet-stream) or multipart/form-data"
            ),
        ));
    }
    Ok(vec![("the body".to_string(), request.body.to_vec())])
}

/// Whether `bytes` begin as a PNG or a JPEG file does.
fn is_png_or_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// The JSON of one prediction.
fn prediction_json(input: &Image, prediction: &Prediction) -> Value {
    let top3: Vec<Value> = top_k(&prediction.probabilities, 3)
        .into_iter()
        .map(|(c, p)| json!({ "class": CLASS_NAMES[c], "index": c, "probability": p }))
        .collect();
    let best = top_k(&prediction.probabilities, 1)[0].0;
    json!({
        "class": CLASS_NAMES[best],
        "index": best,
        "probabilities": prediction.probabilities,
        "top3": top3,
        "input_28x28": input.to_vec(),
    })
}

/// The decoded pictures of a prediction request, or the 4xx that says what is wrong with it.
pub(crate) fn upload(
    request: ApiRequest,
    batch: bool,
    predictor: Predictor,
) -> Result<Upload, ApiResponse> {
    let files = uploads(request)?;
    let limit = if batch { MAX_BATCH_FILES } else { 1 };
    if files.len() > limit {
        return Err(ApiResponse::error(
            if batch { 413 } else { 400 },
            if batch {
                format!(
                    "{} pictures: a batch holds at most {MAX_BATCH_FILES}",
                    files.len()
                )
            } else {
                format!(
                    "{} pictures: /api/predict takes one; send several to /api/predict/batch",
                    files.len()
                )
            },
        ));
    }
    let mut images = Vec::with_capacity(files.len());
    for (name, bytes) in &files {
        if bytes.is_empty() {
            return Err(ApiResponse::error(
                400,
                format!("{name} is empty: send a PNG or JPEG picture"),
            ));
        }
        images.push(
            decode_image(bytes).map_err(|e| {
                ApiResponse::error(400, format!("{name}: not a readable image: {e}"))
            })?,
        );
    }
    if images.is_empty() {
        return Err(ApiResponse::error(400, "no picture: the form has no parts"));
    }
    Ok(Upload {
        names: files.into_iter().map(|(name, _)| name).collect(),
        images,
        batch,
        predictor,
    })
}
