rule captions:
    """Caption every real train image with an OpenAI(-compatible) model (login node: needs
    internet; key only from OPENAI_API_KEY). Finished captions are cached and never lost.
    """
    input:
        openai_key_checked,
        shards=get_real_train_shards,
        classes=get_classes_file,
    output:
        captions=P.captions(),
        failures=P.caption_failures(),
    log:
        P.log("captions"),
    localrule: True
    conda:
        "../../envs/captions.yaml"
    params:
        captions=result_settings("captions", default={}),
        cache_dir="resources/cache/captions",
    script:
        "../scripts/caption_images.py"
