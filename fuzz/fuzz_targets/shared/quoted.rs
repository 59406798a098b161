//! What the parser fuzz targets look for in an error: the quoted values a field was given.

/// The quoted values that follow each occurrence of `field` in `text`.
pub fn values<'a>(text: &'a str, field: &str) -> Vec<&'a str> {
    text.split(field)
        .skip(1)
        .filter_map(|rest| {
            let start = rest.find('"')? + 1;
            let len = rest[start..].find('"')?;
            Some(&rest[start..start + len])
        })
        .collect()
}
