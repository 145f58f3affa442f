"""The TensorFlow/Keras port: keras.layers.Dense + MeanSquaredError + keras.optimizers, CPU/GPU."""
