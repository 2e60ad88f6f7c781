//! The exec protocol's part streams (`wire::exec::PartReader`), as an agent
//! reads a proxy's request and the proxy an agent's answer: any bytes, cut
//! into body frames anywhere, are read without a panic and within the
//! limits; and a stream written by the encoder reads back as written.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wire::body::Body;
use wire::exec::{encode_part, PartHeader, PartReader, END};

fn body_of(data: &[u8], cut: usize) -> Body {
    let pieces: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(cut.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Body::from_stream(futures_util::stream::iter(pieces))
}

async fn read_all(mut r: PartReader) -> Result<Vec<(PartHeader, Vec<u8>)>, wire::exec::PartError> {
    let mut out = Vec::new();
    while let Some(h) = r.next_part().await? {
        let data = r.read_data(1 << 20).await?;
        out.push((h, data));
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Any bytes: read or refused, never a panic.
        let _ = read_all(PartReader::new(body_of(rest, usize::from(cut)))).await;
        // Parts made of the input read back as they were written.
        let parts: Vec<(PartHeader, Vec<u8>)> = rest
            .chunks(37)
            .enumerate()
            .map(|(i, d)| {
                let h = PartHeader {
                    name: format!("p{i}"),
                    len: (i % 2 == 0).then_some(d.len() as u64),
                    ..PartHeader::default()
                };
                (h, d.to_vec())
            })
            .collect();
        let mut stream = Vec::new();
        for (h, d) in &parts {
            stream.extend_from_slice(&encode_part(h, d));
        }
        stream.extend_from_slice(&END);
        let back = read_all(PartReader::new(body_of(&stream, usize::from(cut))))
            .await
            .expect("an encoded stream reads back");
        assert_eq!(back, parts);
    });
});
