if openai_captioner():

    rule captions:
        """Caption every real train image, and with captions.held_out every val and test image,
        with an OpenAI(-compatible) model in one pass (login node: needs internet; key only from
        OPENAI_API_KEY). Finished captions are cached and never lost. One table per split.
        """
        input:
            openai_key_checked,
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

else:

    rule digits_captions:
        """Caption every real digit by its measured attributes (stroke weight, slant, width,
        height, binned at the train split's per-class tertiles): the embedded default's caption
        prompts, made locally at no cost. Same tables, same columns as rule captions.
        """
        input:
            unpack(get_caption_inputs),
        output:
            **held_out_caption_outputs(),
            captions=P.captions(),
        log:
            P.log("captions"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../scripts/digits_captions.py"


# Captioning is the one step billed per image: show its cost before anything is sent, in the
# dry run and before a real run. Only the main process prints it; every cluster job re-parses
# this file.
if workflow.is_main_process and (note := caption_cost_note()):
    print(note, file=sys.stderr)
