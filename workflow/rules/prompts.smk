rule prompts:
    """The plan of one synthetic split: a row per image (class, prompt, seed, source id)."""
    input:
        unpack(get_prompt_inputs),
    output:
        P.prompts(),
    log:
        P.log("prompts/{synth}/{split}"),
    conda:
        "../../envs/torch.yaml"
    params:
        config={
            "data": class_settings(),
            "prompts": result_settings("prompts", default={}),
            "seed": config["seed"],
        },
        prompt_type=get_prompt_type,
        images_per_class=get_synth_images_per_class,
    script:
        "../scripts/prompts.py"
