rule captions:
    """Caption every real train image, and with captions.held_out every val and test image,
    with an OpenAI(-compatible) model in one pass (login node: needs internet; key only from
    OPENAI_API_KEY). Finished captions are cached and never lost. One table per split.
    """
    input:
        unpack(get_caption_inputs),
    output:
        **held_out_caption_outputs(),
        captions=P.captions(),
        failures=P.caption_failures(),
    log:
        P.log("captions"),
    localrule: True
    conda:
        "../../envs/captions.yaml"
    params:
        captions=caption_request_settings(),
        cache_dir="resources/cache/captions",
    script:
        "../scripts/caption_images.py"
