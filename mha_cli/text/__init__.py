"""Real text through real models (`--text`): the tokenizer, the capture of a layer's input, what
each head does in words, and the records a run on text keeps."""
